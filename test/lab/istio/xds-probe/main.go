// xds-probe: one ADS connection to istiod as a sidecar node would make it, through Istio's own ADS client
// (istio.io/istio/pkg/adsc, which Istio's tests and tools use to stand in for a proxy). It shows istiod's
// side of a VM joining (autoregistration of a WorkloadEntry, pilot/pkg/autoregistration/controller.go)
// without Envoy: the lab's Envoy stand-in is issue 16 item 4.
//
// Usage: xds-probe --address HOST:15012 --cert-dir DIR --namespace NS --workload NAME --ip IP \
//
//	--meta-json '{"AUTO_REGISTER_GROUP":"g",…}' [--xds-san istiod.istio-system.svc] [--wait 30s]
//
// DIR holds cert-chain.pem, key.pem and root-cert.pem (what pilot-agent writes to OUTPUT_CERTS).
// Prints "connected" once istiod answered the first CDS request, then holds the stream until SIGTERM,
// so a test decides how long the "proxy" stays connected.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	status "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"istio.io/istio/pkg/adsc"
)

// clusterType is CDS's type URL; adsc reports each received type by it on its Updates channel.
const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// healthInfoType is pkg/model/xds.go HealthInfoType.
const healthInfoType = "type.googleapis.com/istio.v1.HealthInformation"

func main() {
	address := flag.String("address", "", "istiod host:port (the CA/xDS TLS port)")
	certDir := flag.String("cert-dir", "", "directory with cert-chain.pem, key.pem, root-cert.pem")
	san := flag.String("xds-san", "istiod.istio-system.svc", "server name istiod's certificate must carry")
	namespace := flag.String("namespace", "", "the proxy's namespace")
	workload := flag.String("workload", "", "workload name (node id part)")
	ip := flag.String("ip", "", "the proxy's IP address")
	metaJSON := flag.String("meta-json", "{}", "node metadata (JSON object)")
	wait := flag.Duration("wait", 30*time.Second, "bound for istiod's first answer")
	health := flag.String("health", "", "after connecting, report the application healthy or unhealthy "+
		"the way pilot-agent does (pkg/istio-agent/xds_proxy.go: a HealthInformation request)")
	flag.Parse()
	if *address == "" || *certDir == "" || *namespace == "" || *workload == "" || *ip == "" {
		fmt.Fprintln(os.Stderr, "xds-probe: --address, --cert-dir, --namespace, --workload and --ip are required")
		os.Exit(2)
	}
	var metaMap map[string]any
	if err := json.Unmarshal([]byte(*metaJSON), &metaMap); err != nil {
		fmt.Fprintf(os.Stderr, "xds-probe: --meta-json: %v\n", err)
		os.Exit(2)
	}
	meta, err := structpb.NewStruct(metaMap)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xds-probe: --meta-json: %v\n", err)
		os.Exit(2)
	}
	client, err := adsc.New(*address, &adsc.ADSConfig{
		Config: adsc.Config{
			XDSSAN:    *san,
			CertDir:   *certDir,
			Namespace: *namespace,
			Workload:  *workload,
			IP:        *ip,
			Meta:      meta,
		},
		InitialDiscoveryRequests: []*discovery.DiscoveryRequest{{TypeUrl: clusterType}},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "xds-probe: dial: %v\n", err)
		os.Exit(1)
	}
	if err := client.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "xds-probe: stream: %v\n", err)
		os.Exit(1)
	}
	if _, err := client.Wait(*wait, clusterType); err != nil {
		fmt.Fprintf(os.Stderr, "xds-probe: no CDS answer: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("connected")
	switch *health {
	case "":
	case "healthy", "unhealthy":
		req := &discovery.DiscoveryRequest{TypeUrl: healthInfoType}
		if *health == "unhealthy" {
			req.ErrorDetail = &status.Status{Code: int32(codes.Internal), Message: "lab: application unhealthy"}
		}
		if err := client.Send(req); err != nil {
			fmt.Fprintf(os.Stderr, "xds-probe: health: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("health sent: " + *health)
	default:
		fmt.Fprintln(os.Stderr, "xds-probe: --health must be healthy or unhealthy")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	client.Close()
}
