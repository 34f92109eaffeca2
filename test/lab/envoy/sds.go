package main

// SDS client and TLS contexts. Envoy fetches the secrets its TLS contexts name (tls_certificate_sds_secret_configs,
// validation_context_sds_secret_config) from the SDS cluster (Istio: sds-grpc, pilot-agent's workload socket), one
// state-of-the-world SecretDiscoveryService stream per secret; Istio names them "default" (workload cert+key)
// and "ROOTCA" (trust bundle): security/pkg/nodeagent/sds. TLS handshakes then use whatever secret is current.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
)

type sdsClient struct {
	s       *server
	mu      sync.Mutex
	started map[string]bool
	ctx     context.Context
}

func newSDSClient(s *server) *sdsClient {
	return &sdsClient{s: s, started: map[string]bool{}, ctx: context.Background()}
}

// bind ties the SDS streams to the server's lifetime.
func (c *sdsClient) bind(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx = ctx
}

// ensure starts one SDS stream per new secret name.
func (c *sdsClient) ensure(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if c.started[n] {
			continue
		}
		c.started[n] = true
		go c.run(n)
	}
}

func (c *sdsClient) sdsCluster() string {
	// Istio's bootstrap and every SDS config it sends name the static cluster sds-grpc.
	return "sds-grpc"
}

func (c *sdsClient) run(name string) {
	backoff := 500 * time.Millisecond
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	for ctx.Err() == nil {
		err := c.stream(name)
		if ctx.Err() != nil {
			return
		}
		c.s.logf("warning", "config", "StreamSecrets gRPC config stream to %s closed: %s", c.sdsCluster(), grpcStatusText(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 8*time.Second {
			backoff *= 2
		}
	}
}

func (c *sdsClient) stream(name string) error {
	conn, err := c.s.dialCluster(c.sdsCluster())
	if err != nil {
		return err
	}
	defer conn.Close()
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	st, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		return err
	}
	node := (&adsClient{s: c.s}).node()
	if err := st.Send(&discoveryRequest{TypeUrl: typeSecret, Node: node, ResourceNames: []string{name}}); err != nil {
		return err
	}
	accepted := ""
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		var applyErr error
		for _, r := range resp.GetResources() {
			sec := &tlsv3.Secret{}
			if err := r.UnmarshalTo(sec); err != nil {
				applyErr = err
				break
			}
			if sec.GetName() != name {
				continue
			}
			if err := validateSecret(sec); err != nil {
				applyErr = err
				break
			}
			c.s.mu.Lock()
			c.s.secrets[name] = &secretEntry{secret: sec, version: resp.GetVersionInfo(), lastUpdated: c.s.clock()}
			c.s.mu.Unlock()
		}
		req := &discoveryRequest{TypeUrl: typeSecret, ResourceNames: []string{name}, ResponseNonce: resp.GetNonce()}
		if applyErr != nil {
			req.VersionInfo = accepted
			req.ErrorDetail = &statuspb.Status{Code: 3, Message: applyErr.Error()}
		} else {
			accepted = resp.GetVersionInfo()
			req.VersionInfo = accepted
			c.s.updateCertExpiryStat()
		}
		if err := st.Send(req); err != nil {
			return err
		}
		c.s.checkInitialized()
	}
}

func validateSecret(sec *tlsv3.Secret) error {
	if tc := sec.GetTlsCertificate(); tc != nil {
		if _, err := tls.X509KeyPair(dataSourceBytes(tc.GetCertificateChain()), dataSourceBytes(tc.GetPrivateKey())); err != nil {
			return fmt.Errorf("Failed to load certificate chain from <inline>: %v", err)
		}
	}
	if vc := sec.GetValidationContext(); vc != nil {
		if !x509.NewCertPool().AppendCertsFromPEM(dataSourceBytes(vc.GetTrustedCa())) {
			return fmt.Errorf("Failed to load trusted CA certificates from <inline>")
		}
	}
	return nil
}

func dataSourceBytes(d *corev3.DataSource) []byte {
	switch x := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return x.InlineBytes
	case *corev3.DataSource_InlineString:
		return []byte(x.InlineString)
	}
	return nil
}

func (s *server) updateCertExpiryStat() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	min := int64(-1)
	for _, e := range s.secrets {
		for _, cert := range secretCerts(e.secret) {
			days := int64(cert.NotAfter.Sub(s.clock()).Hours() / 24)
			if days < 0 {
				days = 0
			}
			if min < 0 || days < min {
				min = days
			}
		}
	}
	if min >= 0 {
		s.stats.set("server.days_until_first_cert_expiring", uint64(min))
	}
}

func parsePEMCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		blk, rest := pemDecode(b)
		if blk == nil {
			return out
		}
		if c, err := x509.ParseCertificate(blk); err == nil {
			out = append(out, c)
		}
		b = rest
	}
}

func secretCerts(sec *tlsv3.Secret) []*x509.Certificate {
	if tc := sec.GetTlsCertificate(); tc != nil {
		return parsePEMCerts(dataSourceBytes(tc.GetCertificateChain()))
	}
	if vc := sec.GetValidationContext(); vc != nil {
		return parsePEMCerts(dataSourceBytes(vc.GetTrustedCa()))
	}
	return nil
}

// ---- secret names referenced by resources ----

func commonTLSSecretNames(ctc *tlsv3.CommonTlsContext) []string {
	var out []string
	for _, sc := range ctc.GetTlsCertificateSdsSecretConfigs() {
		out = append(out, sc.GetName())
	}
	if v := ctc.GetValidationContextSdsSecretConfig(); v != nil {
		out = append(out, v.GetName())
	}
	if cv := ctc.GetCombinedValidationContext(); cv != nil {
		out = append(out, cv.GetValidationContextSdsSecretConfig().GetName())
	}
	return out
}

func transportSocketSecretNames(ts *corev3.TransportSocket) []string {
	if ts == nil || ts.GetTypedConfig() == nil {
		return nil
	}
	switch ts.GetTypedConfig().GetTypeUrl() {
	case "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext":
		d := &tlsv3.DownstreamTlsContext{}
		if ts.GetTypedConfig().UnmarshalTo(d) == nil {
			return commonTLSSecretNames(d.GetCommonTlsContext())
		}
	case "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":
		u := &tlsv3.UpstreamTlsContext{}
		if ts.GetTypedConfig().UnmarshalTo(u) == nil {
			return commonTLSSecretNames(u.GetCommonTlsContext())
		}
	}
	return nil
}

func clusterSecretNames(c *clusterv3.Cluster) []string {
	out := transportSocketSecretNames(c.GetTransportSocket())
	for _, m := range c.GetTransportSocketMatches() {
		out = append(out, transportSocketSecretNames(m.GetTransportSocket())...)
	}
	return nonEmpty(out)
}

func listenerSecretNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range allFilterChains(l) {
		out = append(out, transportSocketSecretNames(fc.GetTransportSocket())...)
	}
	return nonEmpty(out)
}

func nonEmpty(in []string) []string {
	out := in[:0]
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ---- TLS configs built from received contexts and current secrets ----

type tlsMaterial struct {
	cert     *tls.Certificate
	roots    *x509.CertPool
	sanMatch []*matcherv3.StringMatcher
	certName string
	caName   string
}

func (s *server) material(ctc *tlsv3.CommonTlsContext) (*tlsMaterial, error) {
	m := &tlsMaterial{}
	for _, sc := range ctc.GetTlsCertificateSdsSecretConfigs() {
		m.certName = sc.GetName()
		sec := s.lookupSecret(sc.GetName())
		if sec == nil || sec.GetTlsCertificate() == nil {
			return nil, fmt.Errorf("secret %s not available", sc.GetName())
		}
		tc := sec.GetTlsCertificate()
		cert, err := tls.X509KeyPair(dataSourceBytes(tc.GetCertificateChain()), dataSourceBytes(tc.GetPrivateKey()))
		if err != nil {
			return nil, err
		}
		m.cert = &cert
	}
	if len(ctc.GetTlsCertificates()) > 0 {
		tc := ctc.GetTlsCertificates()[0]
		cert, err := tls.X509KeyPair(dataSourceBytes(tc.GetCertificateChain()), dataSourceBytes(tc.GetPrivateKey()))
		if err != nil {
			return nil, err
		}
		m.cert = &cert
	}
	var caName string
	var dvc *tlsv3.CertificateValidationContext
	if cv := ctc.GetCombinedValidationContext(); cv != nil {
		caName = cv.GetValidationContextSdsSecretConfig().GetName()
		dvc = cv.GetDefaultValidationContext()
	} else if v := ctc.GetValidationContextSdsSecretConfig(); v != nil {
		caName = v.GetName()
	} else if v := ctc.GetValidationContext(); v != nil {
		dvc = v
	}
	if dvc != nil {
		m.sanMatch = dvc.GetMatchSubjectAltNames()
		for _, t := range dvc.GetMatchTypedSubjectAltNames() {
			m.sanMatch = append(m.sanMatch, t.GetMatcher())
		}
		if ca := dataSourceBytes(dvc.GetTrustedCa()); len(ca) > 0 {
			m.roots = x509.NewCertPool()
			m.roots.AppendCertsFromPEM(ca)
		}
	}
	if caName != "" {
		m.caName = caName
		sec := s.lookupSecret(caName)
		if sec == nil || sec.GetValidationContext() == nil {
			return nil, fmt.Errorf("secret %s not available", caName)
		}
		m.roots = x509.NewCertPool()
		m.roots.AppendCertsFromPEM(dataSourceBytes(sec.GetValidationContext().GetTrustedCa()))
	}
	return m, nil
}

func matchString(m *matcherv3.StringMatcher, v string) bool {
	if m.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	low := func(x string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(x)
		}
		return x
	}
	switch x := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == low(x.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, low(x.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, low(x.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, low(x.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullRegexMatch(x.SafeRegex.GetRegex(), v)
	}
	return false
}

// verifyPeer checks the chain against the trusted CA and the SAN matchers (Envoy checks no host name).
func (m *tlsMaterial) verifyPeer(raw [][]byte, required bool) error {
	if len(raw) == 0 {
		if required {
			return fmt.Errorf("peer did not return a certificate")
		}
		return nil
	}
	var certs []*x509.Certificate
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	if m.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: m.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("CERTIFICATE_VERIFY_FAILED: %v", err)
		}
	}
	if len(m.sanMatch) > 0 {
		var sans []string
		for _, u := range certs[0].URIs {
			sans = append(sans, u.String())
		}
		sans = append(sans, certs[0].DNSNames...)
		for _, sm := range m.sanMatch {
			for _, san := range sans {
				if matchString(sm, san) {
					return nil
				}
			}
		}
		return fmt.Errorf("CERTIFICATE_VERIFY_FAILED: SAN matcher")
	}
	return nil
}

// downstreamTLSConfig builds the server side of a filter chain's DownstreamTlsContext.
func (s *server) downstreamTLSConfig(d *tlsv3.DownstreamTlsContext) (*tls.Config, error) {
	m, err := s.material(d.GetCommonTlsContext())
	if err != nil {
		return nil, err
	}
	if m.cert == nil {
		return nil, fmt.Errorf("no server certificate")
	}
	required := d.GetRequireClientCertificate().GetValue()
	cfg := &tls.Config{Certificates: []tls.Certificate{*m.cert}, MinVersion: tls.VersionTLS12}
	if m.roots != nil || required {
		cfg.ClientAuth = tls.RequestClientCert
		if required {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error { return m.verifyPeer(raw, required) }
	}
	alpn := d.GetCommonTlsContext().GetAlpnProtocols()
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		c := cfg.Clone()
		c.GetConfigForClient = nil
		// BoringSSL in Envoy selects the first server protocol the client offers, and carries on without ALPN
		// when there is no overlap (Go would abort the handshake).
		c.NextProtos = nil
		for _, p := range alpn {
			for _, q := range hi.SupportedProtos {
				if p == q && c.NextProtos == nil {
					c.NextProtos = []string{p}
				}
			}
		}
		return c, nil
	}
	return cfg, nil
}

// upstreamTLSConfig builds the client side of a cluster's UpstreamTlsContext (SNI, ALPN, SAN check).
func (s *server) upstreamTLSConfig(u *tlsv3.UpstreamTlsContext) (*tls.Config, error) {
	m, err := s.material(u.GetCommonTlsContext())
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: u.GetSni(), NextProtos: u.GetCommonTlsContext().GetAlpnProtocols(), InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if m.cert != nil {
		cfg.Certificates = []tls.Certificate{*m.cert}
	}
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error { return m.verifyPeer(raw, true) }
	return cfg, nil
}

func certHash(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
