package main

// Terminal network filters and upstreams:
//   - http_connection_manager: route by Host through the (inline or RDS) route configuration's virtual hosts
//     (exact domain, then longest "*." suffix, then longest prefix, then "*"), first matching route (prefix,
//     path, safe_regex, header matchers), action cluster / weighted_clusters / direct_response:
//     https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/http_routing
//   - tcp_proxy: cluster or weighted_clusters, bytes both ways.
//   - clusters: STATIC / STRICT_DNS / LOGICAL_DNS (load_assignment), EDS (received ClusterLoadAssignment,
//     healthy/unknown endpoints of the lowest priority, round robin), ORIGINAL_DST (the downstream's original
//     destination, e.g. PassthroughCluster / InboundPassthroughCluster); upstream_bind_config source address.
//   - transport_socket_matches: the first match whose fields all equal the endpoint's (or locality's)
//     metadata under "envoy.transport_socket_match" picks the transport socket, else the cluster's
//     transport_socket: https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/cluster.proto
//     That is how Istio's auto mTLS arrives (tlsMode: istio -> UpstreamTlsContext with SNI outbound_.P_._.HOST).
//   - istio.stats filter present -> istio_requests_total / istio_tcp_connections_opened_total with Istio's
//     standard labels (https://istio.io/latest/docs/reference/config/metrics/).

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpoptsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/structpb"
	alpnv2 "istio.io/api/envoy/config/filter/http/alpn/v2alpha1"
)

// ---- one-connection net.Listener for http.Server ----

type oneConnListener struct {
	ch   chan net.Conn
	addr net.Addr
	once sync.Once
	done chan struct{}
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{ch: make(chan net.Conn, 1), addr: c.LocalAddr(), done: make(chan struct{})}
	l.ch <- &closeNotifyConn{Conn: c, onClose: func() { l.Close() }}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *oneConnListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.addr }

type closeNotifyConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *closeNotifyConn) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

// ---- HTTP ----

func (s *server) serveHTTP(conn net.Conn, h *hcmv3.HttpConnectionManager, fc *listenerv3.FilterChain, info *connInfo) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.routeHTTP(w, r, h, info) })
	// codec_type AUTO: HTTP/2 when TLS negotiated "h2" or a plaintext connection starts with the HTTP/2
	// preface (h2c prior knowledge); HTTP/1.1 otherwise.
	h2 := false
	if info.tlsConn != nil {
		h2 = info.tlsConn.ConnectionState().NegotiatedProtocol == "h2"
	} else if pc, ok := conn.(*peekConn); ok {
		if line, err := peekLine(pc.r); err == nil && strings.HasPrefix(line, "PRI * HTTP/2.0") {
			h2 = true
		}
	}
	if h2 && h.GetCodecType() != hcmv3.HttpConnectionManager_HTTP1 {
		(&http2.Server{IdleTimeout: 5 * time.Minute}).ServeConn(conn, &http2.ServeConnOpts{Handler: handler, BaseConfig: &http.Server{}})
		_ = conn.Close()
		return
	}
	ln := newOneConnListener(conn)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 60 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				ln.Close()
			}
		},
	}
	_ = srv.Serve(ln)
}

// upstreamHTTP2 says whether a cluster speaks HTTP/2 upstream: explicit http2_protocol_options (or the
// deprecated cluster field), use_downstream_protocol_config with an HTTP/2 request, or ALPN "h2" negotiated.
func upstreamHTTP2(c *clusterv3.Cluster, r *http.Request, conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return true
	}
	return clusterWantsHTTP2(c, r)
}

// clusterWantsHTTP2: the cluster's configuration alone asks for HTTP/2 upstream.
func clusterWantsHTTP2(c *clusterv3.Cluster, r *http.Request) bool {
	if c.GetHttp2ProtocolOptions() != nil {
		return true
	}
	if a, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		o := &httpoptsv3.HttpProtocolOptions{}
		if a.UnmarshalTo(o) == nil {
			if o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
				return true
			}
			if o.GetUseDownstreamProtocolConfig() != nil && r.ProtoMajor == 2 {
				return true
			}
		}
	}
	return false
}

func (s *server) routeConfig(h *hcmv3.HttpConnectionManager) *routev3.RouteConfiguration {
	if rc := h.GetRouteConfig(); rc != nil {
		return rc
	}
	if rds := h.GetRds(); rds != nil {
		return s.lookupRoute(rds.GetRouteConfigName())
	}
	return nil
}

func domainScore(domain, host string) int {
	d, h := strings.ToLower(domain), strings.ToLower(host)
	switch {
	case d == h:
		return 1 << 20
	case d == "*":
		return 1
	case strings.HasPrefix(d, "*") && strings.HasSuffix(h, d[1:]) && len(h) > len(d)-1:
		return 1<<19 + len(d)
	case strings.HasSuffix(d, "*") && strings.HasPrefix(h, d[:len(d)-1]) && len(h) > len(d)-1:
		return 1<<18 + len(d)
	}
	return 0
}

// selectVirtualHost picks the virtual host whose domains match the request's Host (:authority) best. With the
// route configuration's ignore_port_in_host_matching (Istio sets it on outbound routes,
// pilot/pkg/networking/core/httproute.go) the port is removed from the Host first, as Envoy does
// (source/common/router/config_impl.cc, findVirtualHost).
func selectVirtualHost(rc *routev3.RouteConfiguration, host string) *routev3.VirtualHost {
	if rc.GetIgnorePortInHostMatching() {
		host = hostWithoutPort(host)
	}
	var best *routev3.VirtualHost
	bestScore := 0
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			if sc := domainScore(d, host); sc > bestScore {
				best, bestScore = vh, sc
			}
		}
	}
	return best
}

// hostWithoutPort removes a trailing :port from a Host value (an IPv6 literal keeps its brackets).
func hostWithoutPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

func headerMatches(hm *routev3.HeaderMatcher, r *http.Request) bool {
	var v string
	var present bool
	if strings.EqualFold(hm.GetName(), ":authority") {
		v, present = r.Host, true
	} else if strings.EqualFold(hm.GetName(), ":method") {
		v, present = r.Method, true
	} else if strings.EqualFold(hm.GetName(), ":path") {
		v, present = r.URL.RequestURI(), true
	} else {
		vals := r.Header.Values(hm.GetName())
		present = len(vals) > 0
		v = strings.Join(vals, ",")
	}
	var ok bool
	switch x := hm.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		ok = present == x.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		ok = present && v == x.ExactMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		ok = present && strings.HasPrefix(v, x.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		ok = present && strings.HasSuffix(v, x.SuffixMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		ok = present && fullRegexMatch(x.SafeRegexMatch.GetRegex(), v)
	case *routev3.HeaderMatcher_StringMatch:
		ok = present && matchString(x.StringMatch, v)
	case nil:
		ok = present
	}
	if hm.GetInvertMatch() {
		return !ok
	}
	return ok
}

func routeMatches(m *routev3.RouteMatch, r *http.Request) bool {
	path := r.URL.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	cmp := func(a string) string {
		if cs {
			return a
		}
		return strings.ToLower(a)
	}
	ok := false
	switch x := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		ok = strings.HasPrefix(cmp(path), cmp(x.Prefix))
	case *routev3.RouteMatch_Path:
		ok = cmp(path) == cmp(x.Path)
	case *routev3.RouteMatch_SafeRegex:
		ok = fullRegexMatch(x.SafeRegex.GetRegex(), path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		ok = cmp(path) == cmp(x.PathSeparatedPrefix) || strings.HasPrefix(cmp(path), cmp(x.PathSeparatedPrefix)+"/")
	case nil:
		ok = true
	}
	if !ok {
		return false
	}
	for _, hm := range m.GetHeaders() {
		if !headerMatches(hm, r) {
			return false
		}
	}
	return true
}

// requestRecord carries what the istio.stats filter reports for one request.
type requestRecord struct {
	cluster       string
	responseCode  int
	responseFlags string
	upstreamPeer  string
	upstreamMTLS  bool
}

func (s *server) routeHTTP(w http.ResponseWriter, r *http.Request, h *hcmv3.HttpConnectionManager, info *connInfo) {
	rec := &requestRecord{responseFlags: "-"}
	statPrefix := "http." + h.GetStatPrefix() + "."
	s.stats.inc(statPrefix + "downstream_rq_total")
	defer func() {
		s.stats.inc(fmt.Sprintf("%sdownstream_rq_%dxx", statPrefix, rec.responseCode/100))
		s.recordIstioRequest(h, info, r, rec)
	}()
	// HTTP filters before the router: RBAC (AuthorizationPolicy) answers 403 "RBAC: access denied".
	for _, hf := range h.GetHttpFilters() {
		if hf.GetTypedConfig().GetTypeUrl() != httpRBACType {
			continue
		}
		hr := &hrbacv3.RBAC{}
		_ = hf.GetTypedConfig().UnmarshalTo(hr)
		if allowed, _ := rbacDecision(hr.GetRules(), &rbacInput{info: info, req: r}); !allowed {
			s.stats.inc(statPrefix + hr.GetRulesStatPrefix() + "rbac.denied")
			rec.responseCode = http.StatusForbidden
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, "RBAC: access denied")
			return
		}
		s.stats.inc(statPrefix + hr.GetRulesStatPrefix() + "rbac.allowed")
	}
	rc := s.routeConfig(h)
	if rc == nil {
		rec.responseCode, rec.responseFlags = 404, "NR"
		w.WriteHeader(http.StatusNotFound)
		return
	}
	vh := selectVirtualHost(rc, r.Host)
	var route *routev3.Route
	if vh != nil {
		for _, rt := range vh.GetRoutes() {
			if routeMatches(rt.GetMatch(), r) {
				route = rt
				break
			}
		}
	}
	if route == nil {
		rec.responseCode, rec.responseFlags = 404, "NR"
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if dr := route.GetDirectResponse(); dr != nil {
		rec.responseCode = int(dr.GetStatus())
		w.WriteHeader(rec.responseCode)
		_, _ = w.Write(dataSourceBytes(dr.GetBody()))
		return
	}
	ra := route.GetRoute()
	if ra == nil {
		rec.responseCode, rec.responseFlags = 404, "NR"
		w.WriteHeader(http.StatusNotFound)
		return
	}
	clusterName := ra.GetCluster()
	if wc := ra.GetWeightedClusters(); wc != nil {
		clusterName = pickWeighted(wc.GetClusters())
	}
	if ch := ra.GetClusterHeader(); ch != "" {
		clusterName = r.Header.Get(ch)
	}
	rec.cluster = clusterName
	c := s.lookupCluster(clusterName)
	if c == nil {
		rec.responseCode, rec.responseFlags = 503, "NC"
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if rw := ra.GetPrefixRewrite(); rw != "" {
		if p, ok := route.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Prefix); ok {
			r.URL.Path = rw + strings.TrimPrefix(r.URL.Path, p.Prefix)
		}
	}
	if hr := ra.GetHostRewriteLiteral(); hr != "" {
		r.Host = hr
	}
	s.forwardHTTP(w, r, c, h, info, rec)
}

func pickWeighted(cs []*routev3.WeightedCluster_ClusterWeight) string {
	total := 0
	for _, c := range cs {
		total += int(c.GetWeight().GetValue())
	}
	if total == 0 {
		if len(cs) > 0 {
			return cs[0].GetName()
		}
		return ""
	}
	n := rand.IntN(total)
	for _, c := range cs {
		n -= int(c.GetWeight().GetValue())
		if n < 0 {
			return c.GetName()
		}
	}
	return cs[len(cs)-1].GetName()
}

const upstreamConnectError = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"

func (s *server) forwardHTTP(w http.ResponseWriter, r *http.Request, c *clusterv3.Cluster, h *hcmv3.HttpConnectionManager, info *connInfo, rec *requestRecord) {
	cstat := "cluster." + clusterStatName(c) + "."
	s.stats.inc(cstat + "upstream_rq_total")
	up, err := s.pickUpstream(c, info)
	if err != nil {
		rec.responseCode, rec.responseFlags = 503, "UH"
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "no healthy upstream")
		return
	}
	upConn, dialErr := s.dialUpstream(r.Context(), c, up, istioALPNOverride(h, c, r))
	if dialErr != nil {
		rec.responseCode, rec.responseFlags = 503, "UF"
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, upstreamConnectError+", transport failure reason: "+dialErr.Error())
		return
	}
	defer upConn.Close()
	var transport http.RoundTripper
	if upstreamHTTP2(c, r, upConn) {
		transport = &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) { return upConn, nil }}
	} else {
		transport = &http.Transport{
			DialContext:        func(context.Context, string, string) (net.Conn, error) { return upConn, nil },
			DisableKeepAlives:  true,
			DisableCompression: true,
		}
	}
	// x-forwarded-client-cert, as Istio configures inbound HCMs (APPEND_FORWARD / SANITIZE_SET with
	// subject, uri, dns): By=<own identity>;Hash=<peer cert sha256>;Subject="...";URI=<peer identity>.
	if info.tlsConn != nil && (h.GetForwardClientCertDetails() == hcmv3.HttpConnectionManager_APPEND_FORWARD || h.GetForwardClientCertDetails() == hcmv3.HttpConnectionManager_SANITIZE_SET) {
		st := info.tlsConn.ConnectionState()
		if len(st.PeerCertificates) > 0 {
			xfcc := s.xfccValue(info.tlsConn)
			if h.GetForwardClientCertDetails() == hcmv3.HttpConnectionManager_APPEND_FORWARD && r.Header.Get("X-Forwarded-Client-Cert") != "" {
				xfcc = r.Header.Get("X-Forwarded-Client-Cert") + "," + xfcc
			}
			r.Header.Set("X-Forwarded-Client-Cert", xfcc)
		}
	} else if h.GetForwardClientCertDetails() == hcmv3.HttpConnectionManager_SANITIZE || h.GetForwardClientCertDetails() == hcmv3.HttpConnectionManager_SANITIZE_SET {
		r.Header.Del("X-Forwarded-Client-Cert")
	}
	proto := "http"
	if info.tlsConn != nil {
		proto = "https"
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = up.addr.String()
			pr.Out.Host = r.Host
			pr.Out.Header.Set("X-Forwarded-Proto", proto)
			if pr.Out.Header.Get("X-Request-Id") == "" {
				pr.Out.Header.Set("X-Request-Id", newRequestID())
			}
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			rec.responseCode = resp.StatusCode
			if tc, ok := upConn.(*tls.Conn); ok {
				st := tc.ConnectionState()
				rec.upstreamMTLS = len(st.PeerCertificates) > 0
				if rec.upstreamMTLS && len(st.PeerCertificates[0].URIs) > 0 {
					rec.upstreamPeer = st.PeerCertificates[0].URIs[0].String()
				}
			}
			s.stats.inc(fmt.Sprintf("%supstream_rq_%dxx", cstat, resp.StatusCode/100))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			rec.responseCode, rec.responseFlags = 503, "UC"
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, upstreamConnectError+", transport failure reason: "+err.Error())
		},
	}
	rp.ServeHTTP(w, r)
}

func (s *server) xfccValue(tc *tls.Conn) string {
	peer := tc.ConnectionState().PeerCertificates[0]
	var parts []string
	if sec := s.lookupSecret("default"); sec != nil {
		if certs := secretCerts(sec); len(certs) > 0 && len(certs[0].URIs) > 0 {
			parts = append(parts, "By="+certs[0].URIs[0].String())
		}
	}
	parts = append(parts, "Hash="+certHash(peer.Raw))
	parts = append(parts, fmt.Sprintf("Subject=%q", peer.Subject.String()))
	for _, u := range peer.URIs {
		parts = append(parts, "URI="+u.String())
	}
	for _, d := range peer.DNSNames {
		parts = append(parts, "DNS="+d)
	}
	return strings.Join(parts, ";")
}

func newRequestID() string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ---- TCP proxy ----

func (s *server) tcpProxy(conn net.Conn, t *tcpv3.TcpProxy, fc *listenerv3.FilterChain, info *connInfo) {
	defer conn.Close()
	clusterName := t.GetCluster()
	if wc := t.GetWeightedClusters(); wc != nil {
		total := 0
		for _, c := range wc.GetClusters() {
			total += int(c.GetWeight())
		}
		if total > 0 {
			n := rand.IntN(total)
			for _, c := range wc.GetClusters() {
				n -= int(c.GetWeight())
				if n < 0 {
					clusterName = c.GetName()
					break
				}
			}
		}
	}
	c := s.lookupCluster(clusterName)
	if c == nil {
		return
	}
	up, err := s.pickUpstream(c, info)
	if err != nil {
		return
	}
	upConn, err := s.dialUpstream(context.Background(), c, up, nil)
	if err != nil {
		return
	}
	defer upConn.Close()
	s.recordIstioTCP(fc, info, c, upConn)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upConn, conn); closeWrite(upConn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, upConn); closeWrite(conn); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	switch x := c.(type) {
	case *net.TCPConn:
		_ = x.CloseWrite()
	case *tls.Conn:
		_ = x.CloseWrite()
	case *peekConn:
		closeWrite(x.Conn)
	}
}

// ---- upstream selection and connection ----

type upstream struct {
	addr     netip.AddrPort
	host     string // DNS name for STRICT/LOGICAL_DNS
	metadata *corev3.Metadata
	locality *corev3.Metadata
}

func (s *server) pickUpstream(c *clusterv3.Cluster, info *connInfo) (*upstream, error) {
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		dst := info.dst
		if o := c.GetOriginalDstLbConfig(); o != nil && o.GetUpstreamPortOverride() != nil {
			dst = netip.AddrPortFrom(dst.Addr(), uint16(o.GetUpstreamPortOverride().GetValue()))
		}
		if !info.localAddrRestored && info.dst.Addr().IsUnspecified() {
			return nil, fmt.Errorf("no original destination")
		}
		return &upstream{addr: dst}, nil
	}
	cla := s.clusterLoadAssignment(c)
	// lowest priority with healthy (or unknown) endpoints
	byPriority := map[uint32][]*upstream{}
	for _, le := range cla.GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			hs := lb.GetHealthStatus()
			if hs != corev3.HealthStatus_UNKNOWN && hs != corev3.HealthStatus_HEALTHY {
				continue
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			u := &upstream{metadata: lb.GetMetadata(), locality: le.GetMetadata()}
			if ip, err := netip.ParseAddr(sa.GetAddress()); err == nil {
				u.addr = netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))
			} else {
				u.host = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
			}
			byPriority[le.GetPriority()] = append(byPriority[le.GetPriority()], u)
		}
	}
	if len(byPriority) == 0 {
		return nil, fmt.Errorf("no healthy upstream")
	}
	best := ^uint32(0)
	for p := range byPriority {
		best = min(best, p)
	}
	ups := byPriority[best]
	s.mu.Lock()
	i := s.rrIndex[c.GetName()]
	s.rrIndex[c.GetName()] = i + 1
	s.mu.Unlock()
	return ups[i%len(ups)], nil
}

func structMatches(want *structpb.Struct, have *structpb.Struct) bool {
	for k, v := range want.GetFields() {
		hv, ok := have.GetFields()[k]
		if !ok || !structpbEqual(v, hv) {
			return false
		}
	}
	return true
}

func structpbEqual(a, b *structpb.Value) bool {
	aj, _ := a.MarshalJSON()
	bj, _ := b.MarshalJSON()
	return string(aj) == string(bj)
}

// transportSocketFor picks the cluster's transport socket for an endpoint (transport_socket_matches first).
func transportSocketFor(c *clusterv3.Cluster, up *upstream) *corev3.TransportSocket {
	if len(c.GetTransportSocketMatches()) > 0 {
		const key = "envoy.transport_socket_match"
		em := up.metadata.GetFilterMetadata()[key]
		lm := up.locality.GetFilterMetadata()[key]
		for _, m := range c.GetTransportSocketMatches() {
			if structMatches(m.GetMatch(), em) || (em == nil && structMatches(m.GetMatch(), lm)) {
				return m.GetTransportSocket()
			}
		}
	}
	return c.GetTransportSocket()
}

// istioALPNOverride: Istio's istio.alpn HTTP filter (pilot/pkg/xds/filters/filters.go, Alpn) replaces the upstream
// TLS ALPN by the upstream HTTP protocol (istio-http/1.0, istio-http/1.1, istio-h2 ...), which the peer's inbound
// filter chains match on.
func istioALPNOverride(h *hcmv3.HttpConnectionManager, c *clusterv3.Cluster, r *http.Request) []string {
	for _, hf := range h.GetHttpFilters() {
		if hf.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig" {
			continue
		}
		fc := &alpnv2.FilterConfig{}
		if hf.GetTypedConfig().UnmarshalTo(fc) != nil {
			return nil
		}
		want := alpnv2.FilterConfig_HTTP11
		switch {
		case clusterWantsHTTP2(c, r):
			want = alpnv2.FilterConfig_HTTP2
		case r.ProtoMajor == 1 && r.ProtoMinor == 0:
			want = alpnv2.FilterConfig_HTTP10
		}
		for _, o := range fc.GetAlpnOverride() {
			if o.GetUpstreamProtocol() == want {
				return o.GetAlpnOverride()
			}
		}
	}
	return nil
}

// dialUpstream connects to an endpoint with the transport socket the cluster picks for it; alpnOverride, when
// set, replaces the TLS context's ALPN list (istio.alpn).
func (s *server) dialUpstream(ctx context.Context, c *clusterv3.Cluster, up *upstream, alpnOverride []string) (net.Conn, error) {
	cstat := "cluster." + clusterStatName(c) + "."
	d := net.Dialer{Timeout: 10 * time.Second}
	if ct := c.GetConnectTimeout(); ct != nil && ct.AsDuration() > 0 {
		d.Timeout = ct.AsDuration()
	}
	if bc := c.GetUpstreamBindConfig(); bc != nil && bc.GetSourceAddress() != nil {
		if ip := net.ParseIP(bc.GetSourceAddress().GetAddress()); ip != nil {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	} else if bc := s.bs.GetClusterManager().GetUpstreamBindConfig(); bc != nil && bc.GetSourceAddress() != nil {
		if ip := net.ParseIP(bc.GetSourceAddress().GetAddress()); ip != nil {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	target := up.addr.String()
	if up.host != "" {
		target = up.host
	}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		s.stats.inc(cstat + "upstream_cx_connect_fail")
		return nil, err
	}
	s.stats.inc(cstat + "upstream_cx_total")
	ts := transportSocketFor(c, up)
	if ts != nil && ts.GetTypedConfig().GetTypeUrl() == utlsType {
		u := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
			conn.Close()
			return nil, err
		}
		cfg, err := s.upstreamTLSConfig(u)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if alpnOverride != nil {
			cfg.NextProtos = alpnOverride
		}
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, d.Timeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			s.stats.inc(cstat + "ssl.connection_error")
			conn.Close()
			return nil, fmt.Errorf("TLS_error: %v", err)
		}
		s.stats.inc(cstat + "ssl.handshake")
		return tc, nil
	}
	return conn, nil
}
