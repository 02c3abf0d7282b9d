// Command coreonly imports package cache and nothing else of aside's: the
// dependency test lists the modules it needs (TestCoreModuleDependencies).
package main

import (
	"fmt"

	"github.com/aside-go/aside/cache"
)

func main() {
	fmt.Println(cache.ErrUnavailable)
}
