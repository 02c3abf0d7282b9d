// Command azure shows how an application connects aside to Azure Managed
// Redis, with an access key or with Microsoft Entra ID, and builds a cache on
// the connection.
//
// It runs only when told where the instance is; otherwise it prints what to
// set and exits 0, so that CI can build it without an Azure subscription:
//
//	# access key
//	AZURE_REDIS_HOST=shop.westeurope.redis.azure.net AZURE_REDIS_KEY=... go run ./examples/connect
//
//	# Entra ID: DefaultAzureCredential (managed identity, workload identity,
//	# environment, or `az login` on a workstation); the identity needs an
//	# access policy assignment on the instance
//	AZURE_REDIS_HOST=shop.westeurope.redis.azure.net go run ./examples/connect
//
//	# or everything in one URL (percent-encode the key)
//	AZURE_REDIS_URL='rediss://:<key>@shop.westeurope.redis.azure.net:10000?clustering=enterprise' go run ./examples/connect
//
// AZURE_REDIS_CLUSTERING (oss, the default, enterprise or non-clustered) must
// match the clustering policy the instance was created with.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/loader"
)

// Product is what the application caches.
type Product struct {
	SKU   string
	Name  string
	Cents int64
}

// catalog stands in for the database the cache sits in front of.
var catalog = map[string]Product{
	"sku-1": {"sku-1", "Kettle", 3999},
	"sku-2": {"sku-2", "Teapot", 2499},
}

func main() {
	o, ok, err := optionsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "azure example:", err)
		os.Exit(2)
	}
	if !ok {
		fmt.Println("azure example: set AZURE_REDIS_HOST (plus AZURE_REDIS_KEY for an access key;",
			"without it, Entra ID through DefaultAzureCredential), AZURE_REDIS_URL or AZURE_REDIS_CONNECTION_STRING to run it. Nothing to do.")
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "azure example:", err)
		os.Exit(1)
	}
}

// optionsFromEnv reads the instance from the environment. ok is false when
// nothing is set.
func optionsFromEnv() (o azure.Options, ok bool, err error) {
	if u := os.Getenv("AZURE_REDIS_URL"); u != "" {
		o, err = azure.ParseURL(u) // its errors never quote the URL, which holds the key
		return o, err == nil, err
	}
	if cs := os.Getenv("AZURE_REDIS_CONNECTION_STRING"); cs != "" {
		// The portal's form: name.region.redis.azure.net:10000,password=...,ssl=True,abortConnect=False
		o, err = azure.ParseConnectionString(cs) // nor do these quote the key
		return o, err == nil, err
	}
	o.Host = os.Getenv("AZURE_REDIS_HOST")
	if o.Host == "" {
		return o, false, nil
	}
	o.AccessKey = os.Getenv("AZURE_REDIS_KEY") // empty: Entra ID
	if c := os.Getenv("AZURE_REDIS_CLUSTERING"); c != "" {
		if err := o.Clustering.UnmarshalText([]byte(c)); err != nil {
			return o, false, err
		}
	}
	return o, true, nil
}

func run(o azure.Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Options print without the key, so they can be logged as they are.
	slog.Info("connecting", "options", o)

	// ClientOption checks TLS and, with Entra ID, fetches the first token
	// now: a credential that cannot work fails here, clearly.
	opt, err := azure.ClientOption(ctx, o)
	if err != nil {
		return err
	}
	opt.ClientName = "aside-azure-example"

	// cache.Connect owns the client's invalidation stream. Should the
	// server refuse client-side caching, it connects without it.
	client, err := cache.Connect(opt)
	if err != nil {
		return err
	}
	defer client.Close()
	if !client.Tracking() {
		fmt.Println("the server refused client-side caching: every Get reads from Redis")
	}

	products, err := cache.New(client, cache.Options[string, Product]{
		Namespace: "product",
		Loader: func(ctx context.Context, sku string) (Product, error) {
			fmt.Println("  loader called for", sku)
			p, ok := catalog[sku]
			if !ok {
				return Product{}, loader.ErrNotFound
			}
			return p, nil
		},
	})
	if err != nil {
		return err
	}
	// Start from a clean slate on a shared instance.
	if err := products.Invalidate(ctx, "sku-1", "sku-404"); err != nil {
		return err
	}

	for i := range 2 {
		p, err := products.Get(ctx, "sku-1") // first: loader; then: Redis or memory
		if err != nil {
			return err
		}
		fmt.Printf("Get #%d: %+v\n", i+1, p)
	}
	if _, err := products.Get(ctx, "sku-404"); errors.Is(err, cache.ErrNotFound) {
		fmt.Println("sku-404: not found, as the catalog says")
	} else if err != nil {
		return err
	}

	// After the source changes, invalidate: every process drops its copy.
	catalog["sku-1"] = Product{"sku-1", "Kettle", 3499}
	if err := products.Invalidate(ctx, "sku-1"); err != nil {
		return err
	}
	p, err := products.Get(ctx, "sku-1")
	if err != nil {
		return err
	}
	fmt.Printf("after the price change: %+v\n", p)
	return nil
}
