// Command k3s-standin-build builds (or finds cached) the k3s stand-in and its
// kube-apiserver and prints their paths as shell assignments, for end-to-end
// scenarios that put the stand-in into an image:
//
//	eval "$(go run ./tests/k3s-standin/cmd/k3s-standin-build)"
//	"$K3S_STANDIN" server ...   # with K3S_STANDIN_KUBE_APISERVER exported
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root, err := k3stest.RepoRoot()
	if err != nil {
		fail(err)
	}
	start := time.Now()
	apiserver, err := k3stest.BuildAPIServer(ctx, root)
	if err != nil {
		fail(err)
	}
	k3s, err := k3stest.BuildStandin(ctx, root)
	if err != nil {
		fail(err)
	}
	fmt.Printf("K3S_STANDIN=%s\nexport K3S_STANDIN_KUBE_APISERVER=%s\n", k3s, apiserver)
	fmt.Fprintf(os.Stderr, "built or found in %s\n", time.Since(start).Round(time.Millisecond))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "k3s-standin-build:", err)
	os.Exit(1)
}
