// go-interop-server: a grpc-go 1.33 server for grpc.testing.TestService (interop spec semantics)
// plus platform.echo.v1.EchoService. Swift interop clients and our other peers test against it.
//
// Supported server features (doc/interop-test-descriptions.md): EmptyCall, UnaryCall,
// StreamingInputCall, StreamingOutputCall, FullDuplexCall, HalfDuplexCall, Echo Status,
// Echo Metadata, interval_us and CompressedRequest (expect_compressed). Not supported:
// CompressedResponse — grpc-go 1.33 picks the response compressor before the handler runs and
// has no per-call API to change it (the upstream grpc-go interop server ignores it too).
// UnimplementedCall answers UNIMPLEMENTED; UnimplementedService is not registered.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers gzip so compressed requests decode
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	echopb "platform/interop/echo"
	"platform/interop/echoimpl"
	pb "platform/interop/grpc_testing"
)

const (
	initialMetadataKey  = "x-grpc-test-echo-initial"
	trailingMetadataKey = "x-grpc-test-echo-trailing-bin"
)

// --- compression detection -------------------------------------------------------------------
//
// grpc-go has no API telling a handler whether a request message was compressed. Its stats
// handler sees every received message with both its wire length and its decoded length, and runs
// (in the RPC's context) before the handler gets the message. The interop payloads are zeros, so
// a compressed message is always much shorter on the wire than decoded.

type compressionKey struct{}

// lastCompressed records whether the most recently received message of one RPC was compressed.
type lastCompressed struct{ v int32 }

type compressionStats struct{}

func (compressionStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, &lastCompressed{})
}
func (compressionStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		if h, ok := ctx.Value(compressionKey{}).(*lastCompressed); ok {
			var c int32
			if in.WireLength-5 < in.Length { // WireLength includes the 5-byte message prefix
				c = 1
			}
			atomic.StoreInt32(&h.v, c)
		}
	}
}
func (compressionStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionStats) HandleConn(context.Context, stats.ConnStats) {}

func lastMessageCompressed(ctx context.Context) bool {
	h, ok := ctx.Value(compressionKey{}).(*lastCompressed)
	return ok && atomic.LoadInt32(&h.v) == 1
}

func checkCompressed(ctx context.Context, expect *pb.BoolValue) error {
	if expect.GetValue() && !lastMessageCompressed(ctx) {
		return status.Error(codes.InvalidArgument, "expected a compressed request")
	}
	return nil
}

// --- helpers ---------------------------------------------------------------------------------

func payload(t pb.PayloadType, size int32) (*pb.Payload, error) {
	if t != pb.PayloadType_COMPRESSABLE {
		return nil, status.Errorf(codes.InvalidArgument, "unsupported payload type %d", t)
	}
	if size < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "negative response size %d", size)
	}
	return &pb.Payload{Type: t, Body: make([]byte, size)}, nil
}

// echoedMetadata returns the header and trailer the Echo Metadata feature asks for.
func echoedMetadata(ctx context.Context) (header, trailer metadata.MD) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(initialMetadataKey); len(v) > 0 {
		header = metadata.Pairs(initialMetadataKey, v[0])
	}
	if v := md.Get(trailingMetadataKey); len(v) > 0 {
		trailer = metadata.Pairs(trailingMetadataKey, v[0]) // -bin: grpc-go base64s on the wire
	}
	return
}

// echoStreamMetadata applies Echo Metadata to a streaming call: the header goes out at once.
func echoStreamMetadata(stream grpc.ServerStream) error {
	header, trailer := echoedMetadata(stream.Context())
	if trailer != nil {
		stream.SetTrailer(trailer)
	}
	if header != nil {
		return stream.SendHeader(header)
	}
	return nil
}

func echoStatus(st *pb.EchoStatus) error {
	if st != nil && st.Code != 0 {
		return status.Error(codes.Code(st.Code), st.Message)
	}
	return nil
}

// sendResponses sends one response per ResponseParameters, sleeping interval_us before each.
func sendResponses(t pb.PayloadType, params []*pb.ResponseParameters,
	send func(*pb.StreamingOutputCallResponse) error) error {
	for _, p := range params {
		if us := p.GetIntervalUs(); us > 0 {
			time.Sleep(time.Duration(us) * time.Microsecond)
		}
		pl, err := payload(t, p.GetSize())
		if err != nil {
			return err
		}
		if err := send(&pb.StreamingOutputCallResponse{Payload: pl}); err != nil {
			return err
		}
	}
	return nil
}

// --- TestService -----------------------------------------------------------------------------

type testServer struct {
	pb.UnimplementedTestServiceServer // answers UnimplementedCall with UNIMPLEMENTED
}

func (testServer) EmptyCall(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	return &pb.Empty{}, nil
}

func (testServer) UnaryCall(ctx context.Context, in *pb.SimpleRequest) (*pb.SimpleResponse, error) {
	header, trailer := echoedMetadata(ctx)
	if header != nil {
		grpc.SetHeader(ctx, header)
	}
	if trailer != nil {
		grpc.SetTrailer(ctx, trailer)
	}
	if err := echoStatus(in.GetResponseStatus()); err != nil {
		return nil, err
	}
	if err := checkCompressed(ctx, in.GetExpectCompressed()); err != nil {
		return nil, err
	}
	pl, err := payload(in.GetResponseType(), in.GetResponseSize())
	if err != nil {
		return nil, err
	}
	return &pb.SimpleResponse{Payload: pl}, nil
}

func (testServer) StreamingOutputCall(in *pb.StreamingOutputCallRequest,
	stream pb.TestService_StreamingOutputCallServer) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	if err := echoStatus(in.GetResponseStatus()); err != nil {
		return err
	}
	return sendResponses(in.GetResponseType(), in.GetResponseParameters(), stream.Send)
}

func (testServer) StreamingInputCall(stream pb.TestService_StreamingInputCallServer) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	var sum int32
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		if err := checkCompressed(stream.Context(), in.GetExpectCompressed()); err != nil {
			return err
		}
		sum += int32(len(in.GetPayload().GetBody()))
	}
}

func (testServer) FullDuplexCall(stream pb.TestService_FullDuplexCallServer) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(in.GetResponseStatus()); err != nil {
			return err
		}
		if err := sendResponses(in.GetResponseType(), in.GetResponseParameters(), stream.Send); err != nil {
			return err
		}
	}
}

func (testServer) HalfDuplexCall(stream pb.TestService_HalfDuplexCallServer) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	var reqs []*pb.StreamingOutputCallRequest
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, in)
	}
	for _, in := range reqs {
		if err := echoStatus(in.GetResponseStatus()); err != nil {
			return err
		}
		if err := sendResponses(in.GetResponseType(), in.GetResponseParameters(), stream.Send); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on (0: any free port, printed on stdout)")
	useTLS := flag.Bool("use_tls", false, "serve TLS (ALPN h2) instead of h2c")
	certFile := flag.String("tls_cert_file", "", "PEM certificate chain (with --use_tls)")
	keyFile := flag.String("tls_key_file", "", "PEM private key (with --use_tls)")
	flag.Parse()

	opts := []grpc.ServerOption{grpc.StatsHandler(compressionStats{})}
	if *useTLS {
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("TLS credentials: %v", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer(opts...)
	pb.RegisterTestServiceServer(s, &testServer{})
	echopb.RegisterEchoServiceServer(s, echoimpl.Server{})
	fmt.Fprintf(os.Stdout, "go-interop-server listening on %s (tls=%v)\n", lis.Addr(), *useTLS)
	if err := s.Serve(lis); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
