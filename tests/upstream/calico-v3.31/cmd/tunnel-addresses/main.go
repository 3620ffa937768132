// Command tunnel-addresses runs Calico's own tunnel-address allocator (node/pkg/allocateip, what
// calico-node -allocate-tunnel-addrs runs) for the node named by $NODENAME, against the datastore named by
// $DATASTORE_TYPE and $KUBECONFIG. A fake node has no calico-node, so the test world runs this instead:
// once per change of pools (the default), or as a long-running reconciler with --watch.
package main

import (
	"flag"

	"github.com/projectcalico/calico/node/pkg/allocateip"
)

func main() {
	watch := flag.Bool("watch", false, "keep reconciling as pools and the node change, instead of once")
	flag.Parse()
	if *watch {
		allocateip.Run(make(chan struct{}))
		return
	}
	allocateip.Run(nil)
}
