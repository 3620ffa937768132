// Command cni-dataplane is the data plane of a fake node: it serves Calico's gRPC dataplane API
// (cni-plugin/pkg/dataplane/grpc/proto, service CniDataplane) on a unix socket, so that Calico's real
// `calico` CNI plugin, configured with "dataplane_options": {"type": "grpc", "socket": "unix://…"}, runs its
// whole ADD and DEL (pod lookup, IPAM through calico-ipam, the pod's annotations) on a machine where no
// network namespace or interface exists. Add and Del succeed without touching the host: there is nothing to
// wire up on a fake node, and what the tests check is what Calico writes to the datastore.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	pb "github.com/projectcalico/calico/cni-plugin/pkg/dataplane/grpc/proto"
)

type dataplane struct {
	pb.UnimplementedCniDataplaneServer
}

// Add answers as a data plane that created the pod's interface: the host side gets the name Calico
// asked for (it becomes the WorkloadEndpoint's interfaceName), the container side a MAC address.
func (dataplane) Add(_ context.Context, in *pb.AddRequest) (*pb.AddReply, error) {
	return &pb.AddReply{
		Successful:        true,
		HostInterfaceName: in.GetDesiredHostInterfaceName(),
		ContainerMac:      containerMAC(in.GetNetns(), in.GetInterfaceName()),
	}, nil
}

func (dataplane) Del(context.Context, *pb.DelRequest) (*pb.DelReply, error) {
	return &pb.DelReply{Successful: true}, nil
}

// containerMAC derives a stable, locally administered unicast MAC from the sandbox, so that a repeated
// ADD for the same sandbox reports the same address (Calico parses it and stores it on the endpoint).
func containerMAC(netns, ifname string) string {
	sum := sha256.Sum256([]byte(netns + "\x00" + ifname))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac.String()
}

func main() {
	socket := flag.String("socket", "", "path of the unix socket to serve on (replaced if it exists)")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "cni-dataplane: -socket PATH is required")
		os.Exit(2)
	}
	// A socket file left by a process that was killed would make Listen fail; the caller owns the path.
	if err := os.Remove(*socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Fatalf("cni-dataplane: removing the old socket %s: %v", *socket, err)
	}
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		log.Fatalf("cni-dataplane: listening on %s: %v", *socket, err)
	}
	server := grpc.NewServer()
	pb.RegisterCniDataplaneServer(server, dataplane{})

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.GracefulStop()
	}()
	log.Printf("cni-dataplane: serving on %s", *socket)
	if err := server.Serve(listener); err != nil {
		log.Fatalf("cni-dataplane: %v", err)
	}
	_ = os.Remove(*socket)
}
