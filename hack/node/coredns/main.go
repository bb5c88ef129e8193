// Command coredns is CoreDNS built with only the plugins the local node needs.
//
// The stock binary links every plugin, forward included; this one cannot
// forward a query anywhere even if its Corefile asked, so the cluster DNS
// answers *.cluster.local (and the reverse zones) and refuses everything else.
// Selecting plugins by importing them and trimming dnsserver.Directives is
// CoreDNS's documented way to build a custom server.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives keeps CoreDNS's own order (core/dnsserver/zdirectives.go) for the
// plugins linked above; a Corefile naming any other plugin fails to load.
var directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
