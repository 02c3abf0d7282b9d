package azure_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aside-go/aside/azure"
)

func ExampleParseURL() {
	o, err := azure.ParseURL("rediss://:s3cr3t@shop.westeurope.redis.azure.net:10000?clustering=enterprise")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o) // the key is redacted

	_, err = azure.ParseURL("rediss://:s3cr3t@shop.westeurope.redis.azure.net?skip_verify=true")
	fmt.Println(err)
	// Output:
	// azure.Options{Host: "shop.westeurope.redis.azure.net", Port: 10000, Auth: access key [redacted], Clustering: enterprise}
	// azure: invalid options: insecure TLS setting refused: URL parameter skip_verify turns certificate verification off
}

// ExampleParseConnectionString reads the connection string the Azure portal
// shows under "Access keys", as StackExchange.Redis takes it.
func ExampleParseConnectionString() {
	o, err := azure.ParseConnectionString("shop.westeurope.redis.azure.net:10000,password=s3cr3t,ssl=True,abortConnect=False")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o) // the key is redacted

	_, err = azure.ParseConnectionString("shop.westeurope.redis.azure.net:10000,password=s3cr3t,ssl=True,channelPrefix=app")
	fmt.Println(err)
	// Output:
	// azure.Options{Host: "shop.westeurope.redis.azure.net", Port: 10000, Auth: access key [redacted], Clustering: oss}
	// azure: invalid options: connection string option channelPrefix is a StackExchange.Redis option that azure does not support
}

// ExampleNewClient connects with Microsoft Entra ID through
// DefaultAzureCredential (a managed identity in Azure, the Azure CLI on a
// workstation).
func ExampleNewClient() {
	ctx := context.Background()
	client, err := azure.NewClient(ctx, azure.Options{
		Host:       "shop.westeurope.redis.azure.net",
		Clustering: azure.Enterprise,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	err = client.Do(ctx, client.B().Set().Key("greeting").Value("hello").Build()).Error()
	if err != nil {
		log.Fatal(err)
	}
}
