// go-interop-client: a grpc-go 1.33 client running one interop test case per invocation, with the
// semantics and flags of doc/interop-test-descriptions.md. Exit status 0 means the case passed;
// otherwise the reason is printed on stderr.
//
// Beyond the standard cases: `echo` exercises all four platform.echo.v1.EchoService methods;
// `reflection_v1alpha` and `reflection_v1` do what grpcurl does with server reflection (list the
// services, fetch each one's file and its dependencies, ask for an unknown symbol) over
// grpc.reflection.v1alpha and grpc.reflection.v1.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang/protobuf/proto"
	dpb "github.com/golang/protobuf/protoc-gen-go/descriptor"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	echopb "platform/interop/echo"
	pb "platform/interop/grpc_testing"
)

const (
	initialMetadataKey    = "x-grpc-test-echo-initial"
	initialMetadataValue  = "test_initial_metadata_value"
	trailingMetadataKey   = "x-grpc-test-echo-trailing-bin"
	trailingMetadataValue = "\xab\xab\xab"
	specialStatusMessage  = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
)

var (
	reqSizes  = []int{27182, 8, 1828, 45904}
	respSizes = []int32{31415, 9, 2653, 58979}
)

// failf aborts the test case with a message.
func failf(format string, args ...interface{}) {
	panic(testFailure(fmt.Sprintf(format, args...)))
}

type testFailure string

func check(err error, what string) {
	if err != nil {
		failf("%s: %v", what, err)
	}
}

func expectCode(err error, want codes.Code, what string) {
	if got := status.Code(err); got != want {
		failf("%s: want status %v, got %v (%v)", what, want, got, err)
	}
}

func zeros(n int) *pb.Payload { return &pb.Payload{Body: make([]byte, n)} }

func checkPayload(p *pb.Payload, size int, what string) {
	if p.GetType() != pb.PayloadType_COMPRESSABLE {
		failf("%s: payload type %v", what, p.GetType())
	}
	if len(p.GetBody()) != size {
		failf("%s: payload body is %d bytes, want %d", what, len(p.GetBody()), size)
	}
	if !bytes.Equal(p.GetBody(), make([]byte, size)) {
		failf("%s: payload body is not all zeros", what)
	}
}

func largeRequest() *pb.SimpleRequest {
	return &pb.SimpleRequest{ResponseSize: 314159, Payload: zeros(271828)}
}

// --- response compression detection (see go-interop-server for the idea) ---------------------

type compressionKey struct{}

// compressionLog counts received messages and how many of them were compressed.
type compressionLog struct{ received, compressed int32 }

type compressionStats struct{}

func (compressionStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (compressionStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		if l, ok := ctx.Value(compressionKey{}).(*compressionLog); ok {
			atomic.AddInt32(&l.received, 1)
			if in.WireLength-5 < in.Length {
				atomic.AddInt32(&l.compressed, 1)
			}
		}
	}
}
func (compressionStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionStats) HandleConn(context.Context, stats.ConnStats) {}

// --- test cases ------------------------------------------------------------------------------

type env struct {
	conn *grpc.ClientConn
	tc   pb.TestServiceClient
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

var cases = map[string]func(e env){
	"empty_unary": func(e env) {
		c, cancel := ctx()
		defer cancel()
		r, err := e.tc.EmptyCall(c, &pb.Empty{})
		check(err, "EmptyCall")
		if r == nil {
			failf("EmptyCall: nil response")
		}
	},
	"large_unary": func(e env) {
		c, cancel := ctx()
		defer cancel()
		r, err := e.tc.UnaryCall(c, largeRequest())
		check(err, "UnaryCall")
		checkPayload(r.GetPayload(), 314159, "UnaryCall")
	},
	"client_compressed_unary": func(e env) {
		c, cancel := ctx()
		defer cancel()
		probe := largeRequest()
		probe.ExpectCompressed = &pb.BoolValue{Value: true}
		_, err := e.tc.UnaryCall(c, probe) // sent uncompressed: the server must refuse it
		expectCode(err, codes.InvalidArgument, "feature probe (uncompressed, expect_compressed=true)")

		r, err := e.tc.UnaryCall(c, probe, grpc.UseCompressor(gzip.Name))
		check(err, "compressed UnaryCall")
		checkPayload(r.GetPayload(), 314159, "compressed UnaryCall")

		plain := largeRequest()
		plain.ExpectCompressed = &pb.BoolValue{Value: false}
		r, err = e.tc.UnaryCall(c, plain)
		check(err, "uncompressed UnaryCall")
		checkPayload(r.GetPayload(), 314159, "uncompressed UnaryCall")
	},
	"server_compressed_unary": func(e env) {
		for _, want := range []bool{true, false} {
			log := &compressionLog{}
			c, cancel := ctx()
			c = context.WithValue(c, compressionKey{}, log)
			req := largeRequest()
			req.ResponseCompressed = &pb.BoolValue{Value: want}
			r, err := e.tc.UnaryCall(c, req)
			cancel()
			check(err, fmt.Sprintf("UnaryCall(response_compressed=%v)", want))
			checkPayload(r.GetPayload(), 314159, "UnaryCall")
			if got := atomic.LoadInt32(&log.compressed) > 0; got != want {
				failf("response_compressed=%v but the response's compressed flag was %v", want, got)
			}
		}
	},
	"client_streaming": func(e env) {
		c, cancel := ctx()
		defer cancel()
		s, err := e.tc.StreamingInputCall(c)
		check(err, "StreamingInputCall")
		for _, n := range reqSizes {
			check(s.Send(&pb.StreamingInputCallRequest{Payload: zeros(n)}), "Send")
		}
		r, err := s.CloseAndRecv()
		check(err, "CloseAndRecv")
		if r.GetAggregatedPayloadSize() != 74922 {
			failf("aggregated_payload_size %d, want 74922", r.GetAggregatedPayloadSize())
		}
	},
	"server_streaming": func(e env) {
		c, cancel := ctx()
		defer cancel()
		req := &pb.StreamingOutputCallRequest{}
		for _, n := range respSizes {
			req.ResponseParameters = append(req.ResponseParameters, &pb.ResponseParameters{Size: n})
		}
		s, err := e.tc.StreamingOutputCall(c, req)
		check(err, "StreamingOutputCall")
		for i := 0; ; i++ {
			r, err := s.Recv()
			if err == io.EOF {
				if i != len(respSizes) {
					failf("got %d responses, want %d", i, len(respSizes))
				}
				return
			}
			check(err, "Recv")
			if i >= len(respSizes) {
				failf("more than %d responses", len(respSizes))
			}
			checkPayload(r.GetPayload(), int(respSizes[i]), fmt.Sprintf("response %d", i))
		}
	},
	"ping_pong": func(e env) {
		c, cancel := ctx()
		defer cancel()
		s, err := e.tc.FullDuplexCall(c)
		check(err, "FullDuplexCall")
		for i, n := range reqSizes {
			check(s.Send(&pb.StreamingOutputCallRequest{
				ResponseParameters: []*pb.ResponseParameters{{Size: respSizes[i]}},
				Payload:            zeros(n),
			}), "Send")
			r, err := s.Recv()
			check(err, fmt.Sprintf("Recv %d", i))
			checkPayload(r.GetPayload(), int(respSizes[i]), fmt.Sprintf("response %d", i))
		}
		check(s.CloseSend(), "CloseSend")
		if _, err := s.Recv(); err != io.EOF {
			failf("after half-close: want end of stream, got %v", err)
		}
	},
	"empty_stream": func(e env) {
		c, cancel := ctx()
		defer cancel()
		s, err := e.tc.FullDuplexCall(c)
		check(err, "FullDuplexCall")
		check(s.CloseSend(), "CloseSend")
		if r, err := s.Recv(); err != io.EOF {
			failf("want end of stream with no responses, got %v / %v", r, err)
		}
	},
	"custom_metadata": func(e env) {
		md := metadata.Pairs(initialMetadataKey, initialMetadataValue,
			trailingMetadataKey, trailingMetadataValue)
		checkMD := func(what string, header, trailer metadata.MD) {
			if v := header.Get(initialMetadataKey); len(v) != 1 || v[0] != initialMetadataValue {
				failf("%s: initial metadata %s = %q", what, initialMetadataKey, v)
			}
			if v := trailer.Get(trailingMetadataKey); len(v) != 1 || v[0] != trailingMetadataValue {
				failf("%s: trailing metadata %s = %q", what, trailingMetadataKey, v)
			}
		}
		c, cancel := ctx()
		defer cancel()
		c = metadata.NewOutgoingContext(c, md)
		var header, trailer metadata.MD
		r, err := e.tc.UnaryCall(c, largeRequest(), grpc.Header(&header), grpc.Trailer(&trailer))
		check(err, "UnaryCall")
		checkPayload(r.GetPayload(), 314159, "UnaryCall")
		checkMD("UnaryCall", header, trailer)

		s, err := e.tc.FullDuplexCall(c)
		check(err, "FullDuplexCall")
		check(s.Send(&pb.StreamingOutputCallRequest{
			ResponseParameters: []*pb.ResponseParameters{{Size: 314159}},
			Payload:            zeros(271828),
		}), "Send")
		check(s.CloseSend(), "CloseSend")
		r2, err := s.Recv()
		check(err, "Recv")
		checkPayload(r2.GetPayload(), 314159, "FullDuplexCall")
		if _, err := s.Recv(); err != io.EOF {
			failf("FullDuplexCall: want end of stream, got %v", err)
		}
		header, err = s.Header()
		check(err, "Header")
		checkMD("FullDuplexCall", header, s.Trailer())
	},
	"status_code_and_message": func(e env) {
		statusCheck(e, "test status message")
	},
	"special_status_message": func(e env) {
		c, cancel := ctx()
		defer cancel()
		_, err := e.tc.UnaryCall(c, &pb.SimpleRequest{
			ResponseStatus: &pb.EchoStatus{Code: 2, Message: specialStatusMessage}})
		checkStatus(err, specialStatusMessage, "UnaryCall")
	},
	"unimplemented_method": func(e env) {
		c, cancel := ctx()
		defer cancel()
		_, err := e.tc.UnimplementedCall(c, &pb.Empty{})
		expectCode(err, codes.Unimplemented, "TestService/UnimplementedCall")
	},
	"unimplemented_service": func(e env) {
		c, cancel := ctx()
		defer cancel()
		_, err := pb.NewUnimplementedServiceClient(e.conn).UnimplementedCall(c, &pb.Empty{})
		expectCode(err, codes.Unimplemented, "UnimplementedService/UnimplementedCall")
	},
	"cancel_after_begin": func(e env) {
		c, cancel := context.WithCancel(context.Background())
		s, err := e.tc.StreamingInputCall(c)
		check(err, "StreamingInputCall")
		cancel()
		_, err = s.CloseAndRecv()
		expectCode(err, codes.Canceled, "StreamingInputCall after cancel")
	},
	"cancel_after_first_response": func(e env) {
		c, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := e.tc.FullDuplexCall(c)
		check(err, "FullDuplexCall")
		check(s.Send(&pb.StreamingOutputCallRequest{
			ResponseParameters: []*pb.ResponseParameters{{Size: 31415}},
			Payload:            zeros(27182),
		}), "Send")
		r, err := s.Recv()
		check(err, "Recv")
		checkPayload(r.GetPayload(), 31415, "first response")
		cancel()
		_, err = s.Recv()
		expectCode(err, codes.Canceled, "Recv after cancel")
	},
	"timeout_on_sleeping_server": func(e env) {
		c, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		s, err := e.tc.FullDuplexCall(c)
		if err != nil { // the deadline may already have passed
			expectCode(err, codes.DeadlineExceeded, "FullDuplexCall")
			return
		}
		// Send may fail with io.EOF once the deadline has hit; the status comes from Recv.
		_ = s.Send(&pb.StreamingOutputCallRequest{Payload: zeros(27182)})
		_, err = s.Recv()
		expectCode(err, codes.DeadlineExceeded, "Recv")
	},
	"echo": func(e env) {
		ec := echopb.NewEchoServiceClient(e.conn)
		c, cancel := ctx()
		defer cancel()
		r, err := ec.Echo(c, &echopb.EchoRequest{Text: "hello"})
		check(err, "Echo")
		if r.Text != "hello" {
			failf("Echo: got %q", r.Text)
		}
		xs, err := ec.Expand(c, &echopb.EchoRequest{Text: "a bb ccc"})
		check(err, "Expand")
		var words []string
		for {
			r, err := xs.Recv()
			if err == io.EOF {
				break
			}
			check(err, "Expand Recv")
			words = append(words, r.Text)
		}
		if strings.Join(words, ",") != "a,bb,ccc" {
			failf("Expand: got %q", words)
		}
		cs, err := ec.Collect(c)
		check(err, "Collect")
		for _, w := range []string{"x", "y", "z"} {
			check(cs.Send(&echopb.EchoRequest{Text: w}), "Collect Send")
		}
		r, err = cs.CloseAndRecv()
		check(err, "Collect CloseAndRecv")
		if r.Text != "x y z" {
			failf("Collect: got %q", r.Text)
		}
		us, err := ec.Update(c)
		check(err, "Update")
		for _, w := range []string{"one", "two"} {
			check(us.Send(&echopb.EchoRequest{Text: w}), "Update Send")
			r, err := us.Recv()
			check(err, "Update Recv")
			if r.Text != w {
				failf("Update: sent %q, got %q", w, r.Text)
			}
		}
		check(us.CloseSend(), "Update CloseSend")
		if _, err := us.Recv(); err != io.EOF {
			failf("Update: want end of stream, got %v", err)
		}
	},
	"reflection_v1alpha": func(e env) {
		reflectionCase("grpc.reflection.v1alpha.ServerReflection", func(c context.Context) (rpb.ServerReflection_ServerReflectionInfoClient, error) {
			return rpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(c)
		})
	},
	// grpc-go 1.33 ships no v1 reflection client. The v1 messages are v1alpha's field for field,
	// number for number, so v1alpha's Go messages on the v1 method are byte for byte what a v1
	// client sends.
	"reflection_v1": func(e env) {
		reflectionCase("grpc.reflection.v1.ServerReflection", func(c context.Context) (rpb.ServerReflection_ServerReflectionInfoClient, error) {
			s, err := e.conn.NewStream(c, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
				"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
			return v1ReflectionStream{s}, err
		})
	},
}

// v1ReflectionStream types a grpc.reflection.v1 call's stream as grpc-go's generated v1alpha
// client types its own.
type v1ReflectionStream struct{ grpc.ClientStream }

func (s v1ReflectionStream) Send(m *rpb.ServerReflectionRequest) error { return s.SendMsg(m) }
func (s v1ReflectionStream) Recv() (*rpb.ServerReflectionResponse, error) {
	m := new(rpb.ServerReflectionResponse)
	return m, s.RecvMsg(m)
}

// reflectionCase lists the services over one reflection stream (which must include `service`,
// the reflection service asked), fetches the file of each with its dependencies and checks that
// the first file defines the service and that every import arrived (a server may skip files it
// already sent on the stream), then asks for a symbol nobody defines and expects NOT_FOUND in an
// error response. It asks nothing of the interop services, so it runs against any server.
func reflectionCase(service string, open func(context.Context) (rpb.ServerReflection_ServerReflectionInfoClient, error)) {
	c, cancel := ctx()
	defer cancel()
	s, err := open(c)
	check(err, "ServerReflectionInfo")
	ask := func(req *rpb.ServerReflectionRequest, what string) *rpb.ServerReflectionResponse {
		check(s.Send(req), what+": Send")
		r, err := s.Recv()
		check(err, what+": Recv")
		if !proto.Equal(r.GetOriginalRequest(), req) {
			failf("%s: original_request %v, want %v", what, r.GetOriginalRequest(), req)
		}
		return r
	}

	list := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}, "list_services")
	var names []string
	for _, svc := range list.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	if !contains(names, service) {
		failf("list_services: %q is not among %q", service, names)
	}

	files := map[string]*dpb.FileDescriptorProto{}
	for _, name := range names {
		what := "file_containing_symbol " + name
		r := ask(&rpb.ServerReflectionRequest{
			MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name}}, what)
		encoded := r.GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(encoded) == 0 {
			failf("%s: no files (%v)", what, r.GetErrorResponse())
		}
		for i, b := range encoded {
			fd := new(dpb.FileDescriptorProto)
			check(proto.Unmarshal(b, fd), what+": decoding a FileDescriptorProto")
			files[fd.GetName()] = fd
			if i == 0 && !definesService(fd, name) {
				failf("%s: the first file, %s, does not define it", what, fd.GetName())
			}
		}
	}
	for _, fd := range files {
		for _, dep := range fd.GetDependency() {
			if files[dep] == nil {
				failf("%s imports %s, which no answer held", fd.GetName(), dep)
			}
		}
	}

	missing := ask(&rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "no.such.Symbol"}},
		"file_containing_symbol no.such.Symbol")
	if got := missing.GetErrorResponse().GetErrorCode(); got != int32(codes.NotFound) {
		failf("file_containing_symbol no.such.Symbol: error code %d, want NOT_FOUND (%v)", got, missing)
	}
	check(s.CloseSend(), "CloseSend")
	if _, err := s.Recv(); err != io.EOF {
		failf("after half-close: want end of stream, got %v", err)
	}
}

func definesService(fd *dpb.FileDescriptorProto, name string) bool {
	for _, svc := range fd.GetService() {
		if fd.GetPackage()+"."+svc.GetName() == name {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkStatus(err error, msg, what string) {
	st, _ := status.FromError(err)
	if st.Code() != codes.Unknown || st.Message() != msg {
		failf("%s: want status UNKNOWN %q, got %v %q", what, msg, st.Code(), st.Message())
	}
}

func statusCheck(e env, msg string) {
	c, cancel := ctx()
	defer cancel()
	want := &pb.EchoStatus{Code: 2, Message: msg}
	_, err := e.tc.UnaryCall(c, &pb.SimpleRequest{ResponseStatus: want})
	checkStatus(err, msg, "UnaryCall")

	s, err := e.tc.FullDuplexCall(c)
	check(err, "FullDuplexCall")
	check(s.Send(&pb.StreamingOutputCallRequest{ResponseStatus: want}), "Send")
	check(s.CloseSend(), "CloseSend")
	_, err = s.Recv()
	checkStatus(err, msg, "FullDuplexCall")
}

func main() {
	host := flag.String("server_host", "127.0.0.1", "server host")
	port := flag.Int("server_port", 0, "server port")
	override := flag.String("server_host_override", "", "TLS server name and :authority")
	testCase := flag.String("test_case", "", "test case to run")
	useTLS := flag.Bool("use_tls", false, "connect with TLS (ALPN h2)")
	caFile := flag.String("ca_file", "", "PEM CA to trust (with --use_tls)")
	flag.Parse()

	run, ok := cases[*testCase]
	if !ok || *port == 0 {
		var names []string
		for n := range cases {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: go-interop-client --server_port P --test_case CASE\ncases: %s\n",
			strings.Join(names, " "))
		os.Exit(2)
	}

	opts := []grpc.DialOption{grpc.WithStatsHandler(compressionStats{}),
		grpc.WithBlock(), grpc.FailOnNonTempDialError(true)}
	if *useTLS {
		creds, err := credentials.NewClientTLSFromFile(*caFile, *override)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: TLS credentials: %v\n", *testCase, err)
			os.Exit(1)
		}
		opts = append(opts, grpc.WithTransportCredentials(creds))
	} else {
		opts = append(opts, grpc.WithInsecure())
		if *override != "" {
			opts = append(opts, grpc.WithAuthority(*override))
		}
	}
	dialCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dialCtx, net.JoinHostPort(*host, fmt.Sprint(*port)), opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL %s: connect: %v\n", *testCase, err)
		os.Exit(1)
	}
	defer conn.Close()

	if !runCase(run, env{conn: conn, tc: pb.NewTestServiceClient(conn)}, *testCase) {
		os.Exit(1)
	}
	fmt.Printf("PASS %s\n", *testCase)
}

func runCase(run func(env), e env, name string) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			f, isFailure := r.(testFailure)
			if !isFailure {
				panic(r)
			}
			fmt.Fprintf(os.Stderr, "FAIL %s: %s\n", name, string(f))
			ok = false
		}
	}()
	run(e)
	return true
}
