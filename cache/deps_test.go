package cache_test

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// heavyModules are the modules a program that imports only package cache must
// not need: the Azure SDK and what it brings (MSAL, golang-jwt, pkg/browser)
// live in the azure module, OpenTelemetry in its own, toxiproxy and the other
// test tools of the fault suite in faults/.
var heavyModules = []string{
	"github.com/Azure/",
	"github.com/AzureAD/",
	"github.com/golang-jwt/",
	"github.com/pkg/browser",
	"github.com/aside-go/aside/azure",
	"go.opentelemetry.io/",
	"github.com/Shopify/toxiproxy",
	"github.com/prometheus/",
	"github.com/rs/zerolog",
}

// TestCoreModuleDependencies builds the module list of testdata/coreonly, a
// program that imports package cache alone, and of the root module's whole
// graph (what `go get github.com/aside-go/aside` resolves): neither may hold
// a heavy module.
func TestCoreModuleDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	run := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return strings.Fields(string(out))
	}
	check := func(what string, modules []string) {
		t.Helper()
		if len(modules) == 0 {
			t.Fatalf("%s: no modules listed", what)
		}
		for _, m := range modules {
			for _, h := range heavyModules {
				if strings.HasPrefix(m, h) {
					t.Errorf("%s needs %s", what, m)
				}
			}
		}
	}
	deps := run("list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./testdata/coreonly")
	check("a program importing only cache", deps)
	var sawCore bool
	for _, m := range deps {
		sawCore = sawCore || m == "github.com/aside-go/aside"
	}
	if !sawCore {
		t.Fatalf("go list -deps of testdata/coreonly does not list the aside module: %q", deps)
	}
	check("the root module's graph", run("list", "-m", "-f", "{{.Path}}", "all"))
}
