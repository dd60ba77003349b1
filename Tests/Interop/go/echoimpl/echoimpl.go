// Package echoimpl is the Go implementation of platform.echo.v1.EchoService, shared by the Go
// interop server and the Go benchmark echo server.
package echoimpl

import (
	"context"
	"io"
	"strings"

	pb "platform/interop/echo"
)

// Server implements all four EchoService methods as the proto documents them.
type Server struct{}

// Echo returns the request's text.
func (Server) Echo(_ context.Context, in *pb.EchoRequest) (*pb.EchoResponse, error) {
	return &pb.EchoResponse{Text: in.Text}, nil
}

// Expand returns one response per whitespace-separated word of the text.
func (Server) Expand(in *pb.EchoRequest, stream pb.EchoService_ExpandServer) error {
	for _, w := range strings.Fields(in.Text) {
		if err := stream.Send(&pb.EchoResponse{Text: w}); err != nil {
			return err
		}
	}
	return nil
}

// Collect joins the texts of every request with single spaces.
func (Server) Collect(stream pb.EchoService_CollectServer) error {
	var parts []string
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.EchoResponse{Text: strings.Join(parts, " ")})
		}
		if err != nil {
			return err
		}
		parts = append(parts, in.Text)
	}
}

// Update returns each request's text as it arrives.
func (Server) Update(stream pb.EchoService_UpdateServer) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.EchoResponse{Text: in.Text}); err != nil {
			return err
		}
	}
}
