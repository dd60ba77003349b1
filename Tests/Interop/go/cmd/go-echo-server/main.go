// go-echo-server: the grpc-go 1.33 baseline for scripts/benchmark.sh. It serves
// platform.echo.v1.EchoService and grpc-go's own health server (grpc.health.v1, the anchor of
// the health benchmark) with grpc-go's defaults and nothing else, so the comparison with the
// Swift runtime measures the runtimes, not the handlers.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "platform/interop/echo"
	"platform/interop/echoimpl"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on (0: any free port, printed on stdout)")
	flag.Parse()

	lis, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer()
	pb.RegisterEchoServiceServer(s, echoimpl.Server{})
	healthpb.RegisterHealthServer(s, health.NewServer())
	fmt.Fprintf(os.Stdout, "go-echo-server listening on %s\n", lis.Addr())
	if err := s.Serve(lis); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
