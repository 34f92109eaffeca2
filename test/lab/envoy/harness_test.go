package main

// Test harness (not shipped): go-control-plane's snapshot cache and xDS/SDS server on Unix sockets stand in for
// pilot-agent's XDS proxy and SDS server; resources are shaped like istiod's (names, filter chain matches, ALPNs,
// transport_socket_matches, SNI) as seen in ../shared/envoy-reference/config_dump.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	alpnv2 "istio.io/api/envoy/config/filter/http/alpn/v2alpha1"
)

// refDir is ../shared/envoy-reference (beside the repository).
var refDir = filepath.Join("..", "..", "..", "..", "shared", "envoy-reference")

func readRef(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(refDir, p))
	if err != nil {
		t.Fatalf("reference file missing (expected ../shared/envoy-reference beside the repository): %v", err)
	}
	return b
}

// ---- PKI ----

type pki struct {
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
}

func newPKI(t *testing.T, org string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{Organization: []string{org}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour * 365), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pki{caKey: key, caCert: c, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// workload issues a workload certificate with a SPIFFE URI SAN, as istiod's CA does.
func (p *pki) workload(t *testing.T, spiffe string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(spiffe)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), p.caPEM...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func istioSecrets(certPEM, keyPEM, caPEM []byte) []types.Resource {
	return []types.Resource{
		&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}}}}},
		&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}}}}},
	}
}

// ---- control plane stand-in ----

type controlPlane struct {
	cache    cachev3.SnapshotCache
	xdsSock  string
	sdsSock  string
	mu       sync.Mutex
	nacks    []string
	requests []string
	servers  []*grpc.Server
}

func startControlPlane(t *testing.T, dir string) *controlPlane {
	t.Helper()
	cp := &controlPlane{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil),
		xdsSock: filepath.Join(dir, "XDS"), sdsSock: filepath.Join(dir, "sds socket")}
	cb := serverv3.CallbackFuncs{
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			cp.record(r.GetTypeUrl(), r.GetResponseNonce(), r.GetErrorDetail().GetMessage(), r.GetResourceNamesSubscribe())
			return nil
		},
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			cp.record(r.GetTypeUrl(), r.GetResponseNonce(), r.GetErrorDetail().GetMessage(), r.GetResourceNames())
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, cp.cache, cb)
	for _, sock := range []string{cp.xdsSock, cp.sdsSock} {
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
		secretv3.RegisterSecretDiscoveryServiceServer(g, srv)
		go func() { _ = g.Serve(ln) }()
		cp.servers = append(cp.servers, g)
	}
	t.Cleanup(func() {
		for _, g := range cp.servers {
			g.Stop()
		}
		cancel()
	})
	return cp
}

func (cp *controlPlane) record(typeURL, nonce, errMsg string, names []string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	short := typeURL[strings.LastIndex(typeURL, ".")+1:]
	cp.requests = append(cp.requests, fmt.Sprintf("%s nonce=%v names=%v", short, nonce != "", names))
	if errMsg != "" {
		cp.nacks = append(cp.nacks, short+": "+errMsg)
	}
}

func (cp *controlPlane) nackList() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string{}, cp.nacks...)
}

func (cp *controlPlane) set(t *testing.T, nodeID, version string, res map[resourcev3.Type][]types.Resource) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// ---- bootstrap from pilot-agent's real output, pointed at test sockets and free loopback ports ----

type ports struct{ admin, prom, status, agent int }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func testBootstrap(t *testing.T, dir string, cp *controlPlane, p ports, apiType string) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/pilot-agent-bootstrap.json")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	repl := strings.NewReplacer(
		`"port_value": 15000`, fmt.Sprintf(`"port_value": %d`, p.admin),
		`"port_value": 15090`, fmt.Sprintf(`"port_value": %d`, p.prom),
		`"port_value": 15021`, fmt.Sprintf(`"port_value": %d`, p.status),
		`"port_value": 15020`, fmt.Sprintf(`"port_value": %d`, p.agent),
		`"address": "0.0.0.0"`, `"address": "127.0.0.1"`,
		`/work-dir/etc/istio/proxy/XDS`, cp.xdsSock,
		`./var/run/secrets/workload-spiffe-uds/socket`, cp.sdsSock,
	)
	s = repl.Replace(s)
	if apiType != "" {
		s = strings.Replace(s, `"api_type": "DELTA_GRPC"`, `"api_type": "`+apiType+`"`, 1)
	}
	path := filepath.Join(dir, "envoy-rev.json")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const testNodeID = "sidecar~10.0.0.5~vm1.ns1~ns1.svc.cluster.local"

type standin struct {
	srv    *server
	ports  ports
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	logs   *bytes.Buffer
	// origDst maps a client's source port to the destination it "dialled" before iptables REDIRECT.
	origMu  sync.Mutex
	origDst map[int]netip.AddrPort
	allTo   *netip.AddrPort // when set, every connection was "sent to" this address
	realDst bool            // when set, the real SO_ORIGINAL_DST is read (a test in its own netns with iptables)
}

// redirectAllTo makes every accepted connection look redirected from dst (iptables on the VM sends all inbound
// ports to 15006; here the VM's app port).
func (st *standin) redirectAllTo(dst netip.AddrPort) {
	st.origMu.Lock()
	defer st.origMu.Unlock()
	st.allTo = &dst
}

func (st *standin) useRealOriginalDst() {
	st.origMu.Lock()
	defer st.origMu.Unlock()
	st.realDst = true
}

func startStandin(t *testing.T, cp *controlPlane, apiType string) *standin {
	t.Helper()
	dir := t.TempDir()
	p := ports{admin: freePort(t), prom: freePort(t), status: freePort(t), agent: freePort(t)}
	bsPath := testBootstrap(t, dir, cp, p, apiType)
	opts, err := parseFlags(strings.Fields(strings.ReplaceAll(mustRead(t, "testdata/pilot-agent-envoy-args.txt"), "/work-dir/etc/istio/proxy/envoy-rev.json", bsPath)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := loadBootstrap(opts.configPath, opts.configYAML)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	st := &standin{ports: p, dir: dir, done: make(chan struct{}), logs: logs, origDst: map[int]netip.AddrPort{}}
	st.srv = newServer(bs, opts, []string{"envoy"}, log.New(&lockedWriter{w: logs}, "", 0))
	st.srv.originalDst = func(c net.Conn) (netip.AddrPort, error) {
		ra := c.RemoteAddr().(*net.TCPAddr)
		st.origMu.Lock()
		defer st.origMu.Unlock()
		if st.realDst {
			return originalDst(c)
		}
		if st.allTo != nil {
			return *st.allTo, nil
		}
		if d, ok := st.origDst[ra.Port]; ok {
			return d, nil
		}
		return netip.AddrPort{}, fmt.Errorf("not redirected")
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	go func() { defer close(st.done); _ = st.srv.run(ctx) }()
	t.Cleanup(func() { cancel(); <-st.done })
	waitFor(t, "admin answers", func() bool { _, _, err := st.get("/ready"); return err == nil })
	return st
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (st *standin) get(path string) (int, string, error) {
	return httpGet(fmt.Sprintf("http://127.0.0.1:%d%s", st.ports.admin, path))
}

func httpGet(u string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// dialRedirected connects to a stand-in listener as if iptables had redirected a connection for dst.
func (st *standin) dialRedirected(t *testing.T, listenerPort int, dst netip.AddrPort) net.Conn {
	t.Helper()
	// the source port is chosen first so the "redirect" is recorded before the stand-in accepts
	for attempt := 0; attempt < 20; attempt++ {
		src := freePort(t)
		st.origMu.Lock()
		st.origDst[src] = dst
		st.origMu.Unlock()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: src}}
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", listenerPort))
		if err == nil {
			return c
		}
	}
	t.Fatal("cannot dial the stand-in")
	return nil
}

// waitFor polls a condition (bounded: 20 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 400; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

func statValue(text, name string) (string, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: (.*)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// ---- resources shaped like istiod's ----

func anyOf(m proto.Message) *anypb.Any { a, _ := anypb.New(m); return a }

func sdsConfig(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType: corev3.ApiConfigSource_GRPC, TransportApiVersion: corev3.ApiVersion_V3, SetNodeOnFirstMessageOnly: true,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sds-grpc"}}}}}}}}
}

func istioCommonTLS(alpn []string, san *matcherv3.StringMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		AlpnProtocols:                  alpn,
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchSubjectAltNames: []*matcherv3.StringMatcher{san}},
			ValidationContextSdsSecretConfig: sdsConfig("ROOTCA")}},
	}
}

func downstreamTLS(alpn []string) *corev3.TransportSocket {
	d := &tlsv3.DownstreamTlsContext{CommonTlsContext: istioCommonTLS(alpn, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://cluster.local/"}}),
		RequireClientCertificate: wrapperspb.Bool(true)}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(d)}}
}

func hcmFilter(statPrefix string, rc *routev3.RouteConfiguration, rds string, inbound bool) *listenerv3.Filter {
	h := &hcmv3.HttpConnectionManager{StatPrefix: statPrefix,
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "istio.stats", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/stats.PluginConfig"}}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(&routerv3.Router{})}}}}
	if !inbound {
		// istiod puts istio.alpn on outbound sidecar HCMs (pilot/pkg/xds/filters/filters.go, Alpn)
		h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "istio.alpn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(istioALPNFilter())}}}, h.HttpFilters...)
	}
	if inbound {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
	}
	if rc != nil {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds, ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(h)}}
}

func istioALPNFilter() *alpnv2.FilterConfig {
	return &alpnv2.FilterConfig{AlpnOverride: []*alpnv2.FilterConfig_AlpnOverride{
		{UpstreamProtocol: alpnv2.FilterConfig_HTTP10, AlpnOverride: []string{"istio-http/1.0", "istio", "http/1.0"}},
		{UpstreamProtocol: alpnv2.FilterConfig_HTTP11, AlpnOverride: []string{"istio-http/1.1", "istio", "http/1.1"}},
		{UpstreamProtocol: alpnv2.FilterConfig_HTTP2, AlpnOverride: []string{"istio-h2", "istio", "h2"}},
	}}
}

func tcpProxyFilter(cluster string) []*listenerv3.Filter {
	return []*listenerv3.Filter{
		{Name: "istio.stats", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/stats.PluginConfig"}}},
		{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})}},
	}
}

func sockAddr(ip string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}
}

func listenerFilter(name string, disabledPorts ...int) *listenerv3.ListenerFilter {
	lf := &listenerv3.ListenerFilter{Name: name}
	if len(disabledPorts) > 0 {
		var rules []*listenerv3.ListenerFilterChainMatchPredicate
		for _, p := range disabledPorts {
			rules = append(rules, &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{DestinationPortRange: &typeInt32Range{Start: int32(p), End: int32(p + 1)}}})
		}
		lf.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules}}}
	}
	return lf
}

// virtualInbound as istiod builds it for a sidecar (listener_builder.go / listener_inbound.go): per service
// port an mTLS chain (tls + istio ALPNs) and, unless STRICT, a plaintext chain; catch-all chains to
// InboundPassthroughCluster; original_dst, tls_inspector and http_inspector listener filters.
func virtualInbound(port, appPort int, strict bool) *listenerv3.Listener {
	inboundRoute := &routev3.RouteConfiguration{Name: fmt.Sprintf("inbound|%d||", appPort), VirtualHosts: []*routev3.VirtualHost{{
		Name: fmt.Sprintf("inbound|http|%d", appPort), Domains: []string{"*"},
		Routes: []*routev3.Route{{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprintf("inbound|%d||", appPort)}}}}}}}}
	chains := []*listenerv3.FilterChain{
		{Name: "virtualInbound-blackhole", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(port))}, Filters: tcpProxyFilter("BlackHoleCluster")},
		{Name: fmt.Sprintf("0.0.0.0_%d", appPort), FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(appPort)), TransportProtocol: "tls",
			ApplicationProtocols: []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
			TransportSocket: downstreamTLS([]string{"h2", "http/1.1"}),
			Filters:         []*listenerv3.Filter{hcmFilter(fmt.Sprintf("inbound_0.0.0.0_%d", appPort), inboundRoute, "", true)}},
		{Name: "virtualInbound", FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "0.0.0.0", PrefixLen: wrapperspb.UInt32(0)}},
			TransportProtocol: "tls", ApplicationProtocols: []string{"istio-peer-exchange", "istio"}},
			TransportSocket: downstreamTLS([]string{"istio-peer-exchange", "h2", "http/1.1"}), Filters: tcpProxyFilter("InboundPassthroughCluster")},
	}
	if !strict {
		chains = append(chains,
			&listenerv3.FilterChain{Name: fmt.Sprintf("0.0.0.0_%d", appPort), FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(appPort)), TransportProtocol: "raw_buffer"},
				Filters: []*listenerv3.Filter{hcmFilter(fmt.Sprintf("inbound_0.0.0.0_%d", appPort), inboundRoute, "", true)}},
			&listenerv3.FilterChain{Name: "virtualInbound", FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "0.0.0.0", PrefixLen: wrapperspb.UInt32(0)}}, TransportProtocol: "raw_buffer"},
				Filters: tcpProxyFilter("InboundPassthroughCluster")})
	}
	return &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("127.0.0.1", port), TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{
			listenerFilter("envoy.filters.listener.original_dst"),
			listenerFilter("envoy.filters.listener.tls_inspector", port),
			listenerFilter("envoy.filters.listener.http_inspector", port, appPort)},
		ListenerFiltersTimeout: durationpb.New(time.Second), ContinueOnListenerFiltersTimeout: true,
		FilterChains: chains}
}

// virtualOutbound plus one HTTP service-port listener (bind_to_port false) routed by RDS, as for a sidecar.
func outboundListeners(port, svcPort int) []types.Resource {
	return outboundListenersOn("127.0.0.1", port, svcPort)
}

func outboundListenersOn(ip string, port, svcPort int) []types.Resource {
	vo := &listenerv3.Listener{Name: "virtualOutbound", Address: sockAddr(ip, port), UseOriginalDst: wrapperspb.Bool(true), TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{
			{Name: "virtualOutbound-blackhole", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(port))}, Filters: tcpProxyFilter("BlackHoleCluster")},
			{Name: "virtualOutbound-catchall-tcp", Filters: tcpProxyFilter("PassthroughCluster")}}}
	svc := &listenerv3.Listener{Name: fmt.Sprintf("0.0.0.0_%d", svcPort), Address: sockAddr("0.0.0.0", svcPort), BindToPort: wrapperspb.Bool(false), TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{listenerFilter("envoy.filters.listener.tls_inspector"), listenerFilter("envoy.filters.listener.http_inspector")},
		FilterChains: []*listenerv3.FilterChain{{FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}},
			Filters: []*listenerv3.Filter{hcmFilter(fmt.Sprintf("outbound_0.0.0.0_%d", svcPort), nil, fmt.Sprint(svcPort), false)}}},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "PassthroughFilterChain", Filters: tcpProxyFilter("PassthroughCluster")}}
	return []types.Resource{vo, svc}
}

// outboundRoute: per service a virtual host with istiod's domain forms; the "allow_any" catch-all to PassthroughCluster.
func outboundRoute(svcPort int, services map[string]string) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: fmt.Sprint(svcPort), ValidateClusters: wrapperspb.Bool(false)}
	for host, cluster := range services {
		short := strings.Split(host, ".")
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: fmt.Sprintf("%s:%d", host, svcPort),
			Domains: []string{host, fmt.Sprintf("%s:%d", host, svcPort), short[0], fmt.Sprintf("%s:%d", short[0], svcPort), short[0] + "." + short[1], fmt.Sprintf("%s.%s:%d", short[0], short[1], svcPort)},
			Routes: []*routev3.Route{{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}}}})
	}
	rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: "allow_any", Domains: []string{"*"},
		Routes: []*routev3.Route{{Name: "allow_any", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "PassthroughCluster"}}}}}})
	return rc
}

func baseClusters() []types.Resource {
	return []types.Resource{
		&clusterv3.Cluster{Name: "PassthroughCluster", AltStatName: "PassthroughCluster;", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			ConnectTimeout: durationpb.New(10 * time.Second), LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED},
		&clusterv3.Cluster{Name: "BlackHoleCluster", AltStatName: "BlackHoleCluster;", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, ConnectTimeout: durationpb.New(10 * time.Second)},
		&clusterv3.Cluster{Name: "InboundPassthroughCluster", AltStatName: "InboundPassthroughCluster;", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			ConnectTimeout: durationpb.New(10 * time.Second), LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED,
			UpstreamBindConfig: &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "127.0.0.6", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}},
	}
}

func inboundCluster(appPort int) *clusterv3.Cluster {
	n := fmt.Sprintf("inbound|%d||", appPort)
	return &clusterv3.Cluster{Name: n, AltStatName: n + ";", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout: durationpb.New(10 * time.Second), LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED,
		UpstreamBindConfig: &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "127.0.0.6", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}}
}

// autoMTLSCluster: istiod's outbound EDS cluster with auto mTLS (cluster_builder.go): transport_socket_matches
// tlsMode-istio -> ISTIO_MUTUAL UpstreamTlsContext (SNI outbound_.<port>_._.<host>), tlsMode-disabled -> plaintext.
func autoMTLSCluster(host string, port int, peerSA string) *clusterv3.Cluster {
	n := fmt.Sprintf("outbound|%d||%s", port, host)
	u := &tlsv3.UpstreamTlsContext{Sni: fmt.Sprintf("outbound_.%d_._.%s", port, host),
		CommonTlsContext: istioCommonTLS([]string{"istio-http/1.1", "istio", "http/1.1"}, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: peerSA}})}
	return &clusterv3.Cluster{Name: n, AltStatName: n + ";", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: n, EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, InitialFetchTimeout: durationpb.New(0), ResourceApiVersion: corev3.ApiVersion_V3}},
		ConnectTimeout:   durationpb.New(10 * time.Second),
		TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
				TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(u)}}},
			{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer"}},
		}}
}

// edsEndpoints: istiod puts tlsMode under envoy.transport_socket_match (and istio) endpoint metadata.
func edsEndpoints(cluster string, addr netip.AddrPort, tlsMode string) *endpointv3.ClusterLoadAssignment {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	if tlsMode != "" {
		md.FilterMetadata["envoy.transport_socket_match"] = &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(tlsMode)}}
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(addr.Addr().String(), int(addr.Port()))}},
			HealthStatus: corev3.HealthStatus_HEALTHY, Metadata: md, LoadBalancingWeight: wrapperspb.UInt32(1)}}}}}
}

// ---- an app that reports what it saw ----

type app struct {
	port int
	mu   sync.Mutex
	seen []http.Header
	srv  *http.Server
}

func startApp(t *testing.T) *app {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{port: ln.Addr().(*net.TCPAddr).Port}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		h := r.Header.Clone()
		h.Set("X-Test-Remote", r.RemoteAddr)
		h.Set("X-Test-Host", r.Host)
		a.seen = append(a.seen, h)
		a.mu.Unlock()
		fmt.Fprintf(w, "hello from app %d", a.port)
	})}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(func() { _ = a.srv.Close() })
	return a
}

func (a *app) last() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		return nil
	}
	return a.seen[len(a.seen)-1]
}

// httpOver sends one HTTP/1.1 request over an established connection.
func httpOver(t *testing.T, c net.Conn, host string) (int, string) {
	t.Helper()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+host+"/", nil)
	req.Close = true
	if err := req.Write(c); err != nil {
		return 0, err.Error()
	}
	resp, err := http.ReadResponse(bufioReader(c), req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func clientTLS(certPEM, keyPEM, caPEM []byte, alpn []string) *tls.Config {
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, NextProtos: alpn, InsecureSkipVerify: true}
}
