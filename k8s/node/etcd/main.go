// Command etcd is etcd's own server main, built from a wrapper module: go.etcd.io/etcd/server/v3
// replaces its sibling modules with ../ folders, so it cannot be built from the module proxy as
// it is; requiring it from here resolves those siblings to their published versions instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
