//go:build tools

// Package upstream pins the Calico commands the test world runs; tests/upstream/build builds them.
package upstream

import (
	_ "github.com/projectcalico/calico/apiserver/cmd/apiserver"
	_ "github.com/projectcalico/calico/calicoctl/calicoctl"
	_ "github.com/projectcalico/calico/cni-plugin/cmd/calico"
	_ "github.com/projectcalico/calico/kube-controllers/cmd/kube-controllers"
)
