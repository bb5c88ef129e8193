module github.com/connectors-dev/connectors/hack/node/pause

// The pod sandbox ("pause") program: nothing can be pulled on this machine, so
// the sandbox image is built locally from this static binary.

go 1.26.0
