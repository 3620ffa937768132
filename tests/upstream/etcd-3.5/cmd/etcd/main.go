// Command etcd is etcd's own server (etcdmain), built at the version the pinned Kubernetes release names.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
