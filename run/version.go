package run

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Release is eccheck's release; builds from a checkout add the VCS
// revision to [Version].
const Release = "0.1.0-dev"

// Version is the version with the build's revision and Go version, as
// test.json and `eccheck version` give it.
var Version = func() string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " (" + s.Value[:12] + ")"
			}
		}
	}
	return fmt.Sprintf("eccheck %s%s %s %s/%s", Release, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}()
