// Test-only: builds SeaweedFS's `weed` (Apache-2.0), the S3-compatible server
// the test suite stores into. Never shipped; see test/tools/build-binaries.sh.
module tteok.dev/testtools/seaweedfs

go 1.26.6

require github.com/seaweedfs/seaweedfs v0.0.0-20261109003541-7506e5f91cd6

// Copied from SeaweedFS's own go.mod: replace directives only apply in the main module.
replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
