// CNCF Distribution v3's registry as the sandbox runs it: Distribution's own `registry`
// command with the storage drivers and middleware the sandbox uses (filesystem, in-memory,
// redirect and rewrite), htpasswd and token auth, and the pull-through proxy. The cloud storage
// drivers (Azure, GCS, S3 and CloudFront) are left out: the sandbox keeps its storage on disk,
// and their SDKs were about half of the source a cold build compiled (27 MB of Go against 49 MB).
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/silly"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/proxy"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/redirect"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/rewrite"
)

func main() {
	// Execute prints a failing command's error and exits non-zero itself.
	_ = registry.RootCmd.Execute()
}
