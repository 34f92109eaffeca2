package main

// Listeners as Envoy runs them for an Istio sidecar:
//   - bound listeners accept; use_original_dst (virtualOutbound 15001, virtualInbound 15006 via the
//     original_dst listener filter) reads SO_ORIGINAL_DST and, for use_original_dst, hands the connection to the
//     listener bound to that address (bind_to_port: false listeners such as 0.0.0.0_80):
//     https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/listener/v3/listener.proto (use_original_dst)
//   - listener filters tls_inspector (transport protocol "tls", SNI, ALPN) and http_inspector (ALPN
//     "http/1.1"/"h2c" for plaintext), each skipped when its filter_disabled predicate matches;
//   - filter chain selection in Envoy's order (destination port, destination IP, server name, transport protocol,
//     application protocols, direct source IP, source type, source IP, source port), the most specific match
//     winning at each step and no backtracking:
//     https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/listener/v3/listener_components.proto#config-listener-v3-filterchainmatch
//   - the chain's transport socket (TLS with the SDS cert, peer validated against the SDS CA), then its
//     terminal network filter: http_connection_manager or tcp_proxy (proxy.go).

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	nrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

const (
	hcmType      = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyType = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	dtlsType     = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	utlsType     = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
)

type activeListener struct {
	cfg        *listenerv3.Listener
	addr       netip.AddrPort
	statPrefix string
	ln         net.Listener
}

type listenerManager struct {
	s       *server
	mu      sync.Mutex
	byName  map[string]*activeListener
	started bool
}

func newListenerManager(s *server) *listenerManager {
	return &listenerManager{s: s, byName: map[string]*activeListener{}}
}

func allFilterChains(l *listenerv3.Listener) []*listenerv3.FilterChain {
	out := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
	if l.GetDefaultFilterChain() != nil {
		out = append(out, l.GetDefaultFilterChain())
	}
	return out
}

func listenerAddr(l *listenerv3.Listener) (netip.AddrPort, error) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, fmt.Errorf("only socket addresses are supported")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed IP address: %s", sa.GetAddress())
	}
	return netip.AddrPortFrom(ip, uint16(sa.GetPortValue())), nil
}

// listenerStatPrefix: "listener.<ip>_<port>." (Istio sets no stat_prefix on listeners).
func listenerStatPrefix(l *listenerv3.Listener, a netip.AddrPort) string {
	if l.GetStatPrefix() != "" {
		return "listener." + l.GetStatPrefix() + "."
	}
	ip := a.Addr().String()
	if a.Addr().Is6() {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("listener.%s_%d.", ip, a.Port())
}

func bindsToPort(l *listenerv3.Listener) bool {
	return l.GetBindToPort() == nil || l.GetBindToPort().GetValue()
}

// validate rejects what Envoy would reject or what the stand-in cannot run (so it NACKs instead of
// pretending): unparsable addresses, terminal filters it cannot decode.
func (m *listenerManager) validate(l *listenerv3.Listener) error {
	if l.GetInternalListener() != nil {
		return nil // internal listeners (waypoint/ambient tunnels) are accepted and not run
	}
	if l.GetFilterChainMatcher() != nil {
		// Istio uses the matcher API only for waypoints (listener_waypoint.go); refuse rather than mis-route.
		return fmt.Errorf("filter_chain_matcher is not supported by the stand-in")
	}
	if _, err := listenerAddr(l); err != nil {
		return err
	}
	for _, fc := range allFilterChains(l) {
		if ts := fc.GetTransportSocket(); ts != nil && ts.GetTypedConfig().GetTypeUrl() == dtlsType {
			if err := ts.GetTypedConfig().UnmarshalTo(&tlsv3.DownstreamTlsContext{}); err != nil {
				return err
			}
		}
		for _, f := range fc.GetFilters() {
			switch f.GetTypedConfig().GetTypeUrl() {
			case hcmType:
				if err := f.GetTypedConfig().UnmarshalTo(&hcmv3.HttpConnectionManager{}); err != nil {
					return err
				}
			case tcpProxyType:
				if err := f.GetTypedConfig().UnmarshalTo(&tcpv3.TcpProxy{}); err != nil {
					return err
				}
			case networkRBACType:
				n := &nrbacv3.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(n); err != nil {
					return err
				}
				if err := validateNetworkRBAC(n); err != nil {
					return err
				}
			}
			if f.GetTypedConfig().GetTypeUrl() == hcmType {
				h := &hcmv3.HttpConnectionManager{}
				_ = f.GetTypedConfig().UnmarshalTo(h)
				for _, hf := range h.GetHttpFilters() {
					if hf.GetTypedConfig().GetTypeUrl() != httpRBACType {
						continue
					}
					hr := &hrbacv3.RBAC{}
					if err := hf.GetTypedConfig().UnmarshalTo(hr); err != nil {
						return err
					}
					if err := validateHTTPRBAC(hr); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func validateClusters(cs map[string]*clusterv3.Cluster) error {
	for n, c := range cs {
		if c.GetName() == "" {
			return fmt.Errorf("cluster %q without a name", n)
		}
		switch c.GetType() {
		case clusterv3.Cluster_STATIC, clusterv3.Cluster_EDS, clusterv3.Cluster_ORIGINAL_DST,
			clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		default:
			if c.GetClusterType() == nil {
				return fmt.Errorf("cluster %s: unsupported type %s", n, c.GetType())
			}
		}
	}
	return nil
}

// listenerRouteNames lists the RDS route_config_names the HCMs of a listener name.
func listenerRouteNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range allFilterChains(l) {
		for _, f := range fc.GetFilters() {
			if f.GetTypedConfig().GetTypeUrl() != hcmType {
				continue
			}
			h := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig().UnmarshalTo(h) == nil && h.GetRds() != nil {
				out = append(out, h.GetRds().GetRouteConfigName())
			}
		}
	}
	return out
}

func (m *listenerManager) addOrUpdate(l *listenerv3.Listener, dynamic bool) error {
	if l.GetInternalListener() != nil {
		return nil
	}
	addr, err := listenerAddr(l)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	al := &activeListener{cfg: l, addr: addr, statPrefix: listenerStatPrefix(l, addr)}
	m.s.stats.define(al.statPrefix+"downstream_cx_total", counterStat)
	if old, ok := m.byName[l.GetName()]; ok {
		if old.ln != nil && old.addr == addr {
			al.ln = old.ln // same socket, new config (Envoy drains the old filter chains; here they just stop being picked)
			m.byName[l.GetName()] = al
			go m.acceptLoop(al)
			return nil
		}
		if old.ln != nil {
			_ = old.ln.Close()
		}
	}
	m.byName[l.GetName()] = al
	if bindsToPort(l) {
		// one address family per socket, as Envoy binds (a Go "tcp" wildcard socket would be dual-stack AF_INET6,
		// and SO_ORIGINAL_DST is then asked at the wrong level)
		network := "tcp4"
		if addr.Addr().Is6() && !addr.Addr().Is4In6() {
			network = "tcp6"
		}
		ln, err := net.Listen(network, addr.String())
		if err != nil {
			delete(m.byName, l.GetName())
			return fmt.Errorf("cannot bind '%s': %v", addr, err)
		}
		al.ln = ln
		go m.acceptLoop(al)
	}
	return nil
}

func (m *listenerManager) remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if al, ok := m.byName[name]; ok {
		if al.ln != nil {
			_ = al.ln.Close()
		}
		delete(m.byName, name)
	}
}

func (m *listenerManager) startWorkers() {
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
}

func (m *listenerManager) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, al := range m.byName {
		if al.ln != nil {
			_ = al.ln.Close()
		}
	}
}

func (m *listenerManager) current(al *activeListener) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byName[al.cfg.GetName()] == al
}

func (m *listenerManager) acceptLoop(al *activeListener) {
	<-m.s.liveCh // workers start once initialisation is done; until then the kernel queues connections
	for m.current(al) {
		c, err := al.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !m.current(al) {
			// the listener was updated in place: the new acceptLoop owns the socket now; serve with the newest config
			m.mu.Lock()
			nal := m.byName[al.cfg.GetName()]
			m.mu.Unlock()
			if nal != nil {
				go m.s.handleConn(nal, c, false)
			} else {
				_ = c.Close()
			}
			return
		}
		go m.s.handleConn(al, c, false)
	}
}

// findByAddress returns the listener for an original destination: exact IP:port first, then the wildcard
// address on that port (Envoy's ListenerManager lookup for use_original_dst hand-off).
func (m *listenerManager) findByAddress(dst netip.AddrPort, except *activeListener) *activeListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	var wildcard *activeListener
	for _, al := range m.byName {
		if al == except || al.addr.Port() != dst.Port() {
			continue
		}
		if al.addr.Addr() == dst.Addr() {
			return al
		}
		if al.addr.Addr().IsUnspecified() && al.addr.Addr().Is4() == dst.Addr().Unmap().Is4() {
			wildcard = al
		}
	}
	return wildcard
}

// connInfo is what filter chain matching and the filters see about a downstream connection.
type connInfo struct {
	src, dst          netip.AddrPort
	localAddrRestored bool
	transportProtocol string
	serverName        string
	alpn              []string
	tlsConn           *tls.Conn
	peerPrincipal     string
	mutualTLS         bool
	listener          *activeListener
	chainName         string
}

type peekConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func hasListenerFilter(l *listenerv3.Listener, name string) *listenerv3.ListenerFilter {
	for _, f := range l.GetListenerFilters() {
		if f.GetName() == name || strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), "."+strings.TrimPrefix(name, "envoy.filters.listener.")+".v3."+listenerFilterMessage[name]) {
			return f
		}
	}
	return nil
}

var listenerFilterMessage = map[string]string{
	"envoy.filters.listener.tls_inspector":  "TlsInspector",
	"envoy.filters.listener.http_inspector": "HttpInspector",
	"envoy.filters.listener.original_dst":   "OriginalDst",
}

// filterDisabled evaluates a ListenerFilterChainMatchPredicate.
func filterDisabled(p *listenerv3.ListenerFilterChainMatchPredicate, dstPort uint32) bool {
	if p == nil {
		return false
	}
	switch r := p.GetRule().(type) {
	case *listenerv3.ListenerFilterChainMatchPredicate_AnyMatch:
		return r.AnyMatch
	case *listenerv3.ListenerFilterChainMatchPredicate_NotMatch:
		return !filterDisabled(r.NotMatch, dstPort)
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch:
		for _, x := range r.OrMatch.GetRules() {
			if filterDisabled(x, dstPort) {
				return true
			}
		}
		return false
	case *listenerv3.ListenerFilterChainMatchPredicate_AndMatch:
		for _, x := range r.AndMatch.GetRules() {
			if !filterDisabled(x, dstPort) {
				return false
			}
		}
		return true
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		return int64(dstPort) >= int64(r.DestinationPortRange.GetStart()) && int64(dstPort) < int64(r.DestinationPortRange.GetEnd())
	}
	return false
}

var http1RequestLine = regexp.MustCompile(`^[A-Z]+ \S+ HTTP/1\.[01]\r?$`)

type readOnlyConn struct {
	r io.Reader
	net.Conn
}

func (c readOnlyConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c readOnlyConn) Write(b []byte) (int, error) { return 0, errors.New("inspection only") }

var errInspected = errors.New("client hello inspected")

// inspectTLS parses a ClientHello from the buffered bytes without consuming them.
func inspectTLS(br *bufio.Reader, c net.Conn) (serverName string, alpn []string, ok bool) {
	if first, err := br.Peek(1); err != nil || first[0] != 0x16 {
		return "", nil, false
	}
	hdr, err := br.Peek(5)
	if err != nil || hdr[1] != 0x03 {
		return "", nil, false
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	rec, err := br.Peek(5 + n)
	if err != nil {
		return "", nil, false
	}
	var hello *tls.ClientHelloInfo
	srv := tls.Server(readOnlyConn{r: bytes.NewReader(rec), Conn: c}, &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = hi
		return nil, errInspected
	}})
	_ = srv.Handshake()
	if hello == nil {
		return "", nil, false
	}
	return hello.ServerName, hello.SupportedProtos, true
}

func (s *server) handleConn(al *activeListener, c net.Conn, handedOff bool) {
	l := al.cfg
	info := &connInfo{listener: al}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		info.src = ra.AddrPort()
	}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		info.dst = la.AddrPort()
	}
	if od, err := s.originalDst(c); err == nil && (l.GetUseOriginalDst().GetValue() || hasListenerFilter(l, "envoy.filters.listener.original_dst") != nil) {
		if od.Addr().Unmap() != info.dst.Addr().Unmap() || od.Port() != info.dst.Port() {
			info.localAddrRestored = true
		}
		info.dst = netip.AddrPortFrom(od.Addr().Unmap(), od.Port())
	}
	info.src = netip.AddrPortFrom(info.src.Addr().Unmap(), info.src.Port())
	if !handedOff && l.GetUseOriginalDst().GetValue() && info.localAddrRestored {
		if target := s.listenerMgr.findByAddress(info.dst, al); target != nil {
			s.serveOn(target, c, info)
			return
		}
	}
	s.serveOn(al, c, info)
}

func (s *server) serveOn(al *activeListener, c net.Conn, info *connInfo) {
	l := al.cfg
	info.listener = al
	s.stats.inc(al.statPrefix + "downstream_cx_total")
	s.stats.gaugeAdd(al.statPrefix+"downstream_cx_active", 1)
	s.stats.gaugeAdd("server.total_connections", 1)
	defer s.stats.gaugeAdd(al.statPrefix+"downstream_cx_active", -1)
	defer s.stats.gaugeAdd("server.total_connections", -1)
	br := bufio.NewReaderSize(c, 32*1024)
	pc := &peekConn{Conn: c, r: br}
	info.transportProtocol = "raw_buffer"
	timeout := 15 * time.Second
	if l.GetListenerFiltersTimeout() != nil {
		timeout = l.GetListenerFiltersTimeout().AsDuration()
	}
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
	}
	if f := hasListenerFilter(l, "envoy.filters.listener.tls_inspector"); f != nil && !filterDisabled(f.GetFilterDisabled(), uint32(info.dst.Port())) {
		if sn, alpn, ok := inspectTLS(br, c); ok {
			info.transportProtocol, info.serverName, info.alpn = "tls", sn, alpn
		}
	}
	if f := hasListenerFilter(l, "envoy.filters.listener.http_inspector"); f != nil && info.transportProtocol == "raw_buffer" && !filterDisabled(f.GetFilterDisabled(), uint32(info.dst.Port())) {
		if line, err := peekLine(br); err == nil {
			if strings.HasPrefix(line, "PRI * HTTP/2.0") {
				info.alpn = []string{"h2c"}
			} else if m := http1RequestLine.FindString(line); m != "" {
				if strings.HasSuffix(strings.TrimSuffix(m, "\r"), "HTTP/1.0") {
					info.alpn = []string{"http/1.0"}
				} else {
					info.alpn = []string{"http/1.1"}
				}
			}
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	fc := matchFilterChain(l, info)
	if fc == nil {
		s.stats.inc(al.statPrefix + "no_filter_chain_match")
		_ = c.Close()
		return
	}
	info.chainName = fc.GetName()
	var conn net.Conn = pc
	if ts := fc.GetTransportSocket(); ts != nil && ts.GetTypedConfig().GetTypeUrl() == dtlsType {
		d := &tlsv3.DownstreamTlsContext{}
		_ = ts.GetTypedConfig().UnmarshalTo(d)
		cfg, err := s.downstreamTLSConfig(d)
		if err != nil {
			s.stats.inc(al.statPrefix + "ssl.connection_error")
			s.logf("debug", "connection", "TLS context not ready: %v", err)
			_ = c.Close()
			return
		}
		tc := tls.Server(pc, cfg)
		if err := tc.Handshake(); err != nil {
			s.stats.inc(al.statPrefix + "ssl.connection_error")
			s.logf("debug", "connection", "TLS error: %v", err)
			_ = c.Close()
			return
		}
		s.stats.inc(al.statPrefix + "ssl.handshake")
		st := tc.ConnectionState()
		if len(st.PeerCertificates) > 0 {
			info.mutualTLS = true
			if len(st.PeerCertificates[0].URIs) > 0 {
				info.peerPrincipal = st.PeerCertificates[0].URIs[0].String()
			}
		} else {
			s.stats.inc(al.statPrefix + "ssl.no_certificate")
		}
		info.tlsConn = tc
		conn = tc
	}
	for _, f := range fc.GetFilters() {
		switch f.GetTypedConfig().GetTypeUrl() {
		case networkRBACType:
			n := &nrbacv3.RBAC{}
			_ = f.GetTypedConfig().UnmarshalTo(n)
			allowed, _ := rbacDecision(n.GetRules(), &rbacInput{info: info})
			if allowed {
				s.stats.inc(n.GetStatPrefix() + "rbac.allowed")
				continue
			}
			s.stats.inc(n.GetStatPrefix() + "rbac.denied")
			_ = conn.Close()
			return
		case hcmType:
			h := &hcmv3.HttpConnectionManager{}
			_ = f.GetTypedConfig().UnmarshalTo(h)
			s.serveHTTP(conn, h, fc, info)
			return
		case tcpProxyType:
			t := &tcpv3.TcpProxy{}
			_ = f.GetTypedConfig().UnmarshalTo(t)
			s.tcpProxy(conn, t, fc, info)
			return
		}
	}
	_ = conn.Close()
}

var httpMethodPrefix = regexp.MustCompile(`^[A-Z]{0,16}$|^[A-Z]+ |^PRI`)

// peekLine returns the first line of the buffered data without consuming it, reading only as much as needed:
// it gives up as soon as the bytes cannot start an HTTP/1 request line or an HTTP/2 preface (Envoy's
// http_inspector likewise decides on partial data).
func peekLine(br *bufio.Reader) (string, error) {
	if _, err := br.Peek(1); err != nil {
		return "", err
	}
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return string(b[:i]), nil
		}
		if !httpMethodPrefix.Match(b) || len(b) >= 4096 {
			return string(b), nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return string(b), err
		}
	}
}

// ---- filter chain matching ----

type scoreFn func(m *listenerv3.FilterChainMatch) int // -1 no match, 0 unspecified, >0 specific

func narrow(chains []*listenerv3.FilterChain, f scoreFn) []*listenerv3.FilterChain {
	best := -1
	var out []*listenerv3.FilterChain
	for _, fc := range chains {
		sc := f(fc.GetFilterChainMatch())
		if sc < 0 {
			continue
		}
		if sc > best {
			best, out = sc, nil
		}
		if sc == best {
			out = append(out, fc)
		}
	}
	return out
}

func prefixScore(ranges []*corev3CidrRange, ip netip.Addr) int {
	if len(ranges) == 0 {
		// Envoy files a chain without ranges under 0.0.0.0/0 and ::/0 (FilterChainManagerImpl), so it
		// is exactly as specific as an explicit /0 range.
		return 1
	}
	best := -1
	for _, r := range ranges {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			continue
		}
		bits := int(r.GetPrefixLen().GetValue())
		if r.GetPrefixLen() == nil {
			bits = a.BitLen()
		}
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if p.Contains(ip) && bits+1 > best {
			best = bits + 1
		}
	}
	return best
}

func isLocalAddress(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

func matchFilterChain(l *listenerv3.Listener, info *connInfo) *listenerv3.FilterChain {
	chains := l.GetFilterChains()
	dstIP, srcIP := info.dst.Addr().Unmap(), info.src.Addr().Unmap()
	steps := []scoreFn{
		func(m *listenerv3.FilterChainMatch) int {
			if m.GetDestinationPort() == nil {
				return 0
			}
			if m.GetDestinationPort().GetValue() == uint32(info.dst.Port()) {
				return 1
			}
			return -1
		},
		func(m *listenerv3.FilterChainMatch) int { return prefixScore(m.GetPrefixRanges(), dstIP) },
		func(m *listenerv3.FilterChainMatch) int {
			if len(m.GetServerNames()) == 0 {
				return 0
			}
			best := -1
			for _, sn := range m.GetServerNames() {
				if sn == info.serverName && info.serverName != "" {
					best = max(best, 1000)
				} else if strings.HasPrefix(sn, "*") && strings.HasSuffix(info.serverName, sn[1:]) {
					best = max(best, len(sn))
				}
			}
			return best
		},
		func(m *listenerv3.FilterChainMatch) int {
			if m.GetTransportProtocol() == "" {
				return 0
			}
			if m.GetTransportProtocol() == info.transportProtocol {
				return 1
			}
			return -1
		},
		func(m *listenerv3.FilterChainMatch) int {
			if len(m.GetApplicationProtocols()) == 0 {
				return 0
			}
			for _, want := range m.GetApplicationProtocols() {
				for _, got := range info.alpn {
					if want == got {
						return 1
					}
				}
			}
			return -1
		},
		func(m *listenerv3.FilterChainMatch) int { return prefixScore(m.GetDirectSourcePrefixRanges(), srcIP) },
		func(m *listenerv3.FilterChainMatch) int {
			local := srcIP == dstIP || isLocalAddress(srcIP)
			switch m.GetSourceType() {
			case listenerv3.FilterChainMatch_ANY:
				return 0
			case listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK:
				if local {
					return 1
				}
			case listenerv3.FilterChainMatch_EXTERNAL:
				if !local {
					return 1
				}
			}
			return -1
		},
		func(m *listenerv3.FilterChainMatch) int { return prefixScore(m.GetSourcePrefixRanges(), srcIP) },
		func(m *listenerv3.FilterChainMatch) int {
			if len(m.GetSourcePorts()) == 0 {
				return 0
			}
			for _, p := range m.GetSourcePorts() {
				if p == uint32(info.src.Port()) {
					return 1
				}
			}
			return -1
		},
	}
	for _, step := range steps {
		chains = narrow(chains, step)
		if len(chains) == 0 {
			break
		}
	}
	if len(chains) > 0 {
		return chains[0]
	}
	return l.GetDefaultFilterChain()
}
