// Command pause holds a pod's namespaces open until the runtime stops it.
//
// It does what registry.k8s.io/pause does: sleep until SIGINT or SIGTERM, and,
// as PID 1 of a pod sharing its process namespace, reap orphaned children.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child; the zero-timeout loop ends when none is left.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
