// Command etcd is the etcd server, built from go.etcd.io modules at the
// version Kubernetes itself requires (Debian's etcd is too old for 1.31+).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
