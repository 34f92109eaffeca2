package main

// Envoy admin endpoints (https://www.envoyproxy.io/docs/envoy/latest/operations/admin), in Envoy's formats as held
// in ../shared/envoy-reference: JSON from the envoy.admin.v3 protos with proto field names, 2-space indent,
// "<" and ">" escaped as protobuf's C++ JSON printer does; private keys redacted to "[redacted]".

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (s *server) serveAdmin(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", s.adminReady)
	mux.HandleFunc("/stats", s.adminStats)
	mux.HandleFunc("/stats/prometheus", s.adminPrometheus)
	mux.HandleFunc("/config_dump", s.adminConfigDump)
	mux.HandleFunc("/certs", s.adminCerts)
	mux.HandleFunc("/server_info", s.adminServerInfo)
	mux.HandleFunc("/clusters", s.adminClusters)
	mux.HandleFunc("/listeners", s.adminListeners)
	mux.HandleFunc("/quitquitquit", s.adminQuit)
	mux.HandleFunc("/drain_listeners", s.adminDrain)
	mux.HandleFunc("/healthcheck/fail", s.adminHealthFail)
	mux.HandleFunc("/healthcheck/ok", s.adminHealthOK)
	mux.HandleFunc("/logging", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			adminMethodNotAllowed(w)
			return
		}
		fmt.Fprintf(w, "active loggers:\n  admin: %s\n", s.opts.logLevel)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "invalid path. admin commands are:\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	_ = srv.Serve(ln)
}

func adminMethodNotAllowed(w http.ResponseWriter) {
	w.WriteHeader(http.StatusMethodNotAllowed)
	fmt.Fprint(w, "This operation requires a POST request.\n")
}

func textPlain(w http.ResponseWriter) { w.Header().Set("Content-Type", "text/plain; charset=UTF-8") }

func (s *server) adminReady(w http.ResponseWriter, _ *http.Request) {
	textPlain(w)
	st := s.state.Load()
	if st != stateLive {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintf(w, "%s\n", stateNames[st])
}

func (s *server) refreshGauges() {
	s.stats.set("server.uptime", uint64(s.clock().Sub(s.started).Seconds()))
	s.updateCertExpiryStat()
}

func (s *server) adminStats(w http.ResponseWriter, r *http.Request) {
	s.refreshGauges()
	q := r.URL.Query()
	var filter *regexp.Regexp
	if f := q.Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "Invalid re2 regex")
			return
		}
		filter = re
	}
	_, usedOnly := q["usedonly"]
	if q.Get("format") == "prometheus" {
		s.adminPrometheus(w, r)
		return
	}
	if q.Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		type kv struct {
			Name  string `json:"name"`
			Value uint64 `json:"value"`
		}
		out := struct {
			Stats []kv `json:"stats"`
		}{Stats: []kv{}}
		for _, line := range strings.Split(strings.TrimSpace(s.stats.renderText(usedOnly, filter)), "\n") {
			name, val, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			var v uint64
			if _, err := fmt.Sscan(val, &v); err == nil {
				out.Stats = append(out.Stats, kv{name, v})
			}
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	textPlain(w)
	fmt.Fprint(w, s.stats.renderText(usedOnly, filter))
}

func (s *server) adminPrometheus(w http.ResponseWriter, _ *http.Request) {
	s.refreshGauges()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	fmt.Fprint(w, s.stats.renderPrometheus())
}

// envoyJSON renders a proto the way Envoy's admin does: proto field names, 2-space indent, <> escaped.
func envoyJSON(m proto.Message) ([]byte, error) {
	return envoyJSONOpts(m, false)
}

// envoyJSONOpts: alwaysPrint is Envoy's always_print_primitive_fields (used by /server_info and /certs).
func envoyJSONOpts(m proto.Message, alwaysPrint bool) ([]byte, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true, Resolver: resolver, EmitDefaultValues: alwaysPrint}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, err
	}
	out := bytes.ReplaceAll(buf.Bytes(), []byte("<"), []byte(`\u003c`))
	out = bytes.ReplaceAll(out, []byte(">"), []byte(`\u003e`))
	return append(out, '\n'), nil
}

func writeJSON(w http.ResponseWriter, m proto.Message) { writeJSONOpts(w, m, false) }

func writeJSONOpts(w http.ResponseWriter, m proto.Message, alwaysPrint bool) {
	b, err := envoyJSONOpts(m, alwaysPrint)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%v\n", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

var redacted = []byte("[redacted]")

func redactSecret(sec *tlsv3.Secret) *tlsv3.Secret {
	c := proto.Clone(sec).(*tlsv3.Secret)
	if tc := c.GetTlsCertificate(); tc != nil && tc.GetPrivateKey() != nil {
		tc.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: redacted}}
	}
	return c
}

func (s *server) dumpSections(includeEDS bool) []proto.Message {
	s.mu.RLock()
	defer s.mu.RUnlock()
	bsDump := &adminv3.BootstrapConfigDump{Bootstrap: s.bs, LastUpdated: timestamppb.New(s.started)}

	cd := &adminv3.ClustersConfigDump{VersionInfo: s.versions[typeCluster]}
	for _, n := range sortedKeys(s.staticClusters) {
		cd.StaticClusters = append(cd.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(s.staticClusters[n]), LastUpdated: timestamppb.New(s.started)})
	}
	for _, n := range sortedKeys(s.clusters) {
		r := s.clusters[n]
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: r.version, Cluster: mustAny(r.msg), LastUpdated: timestamppb.New(r.lastUpdated)})
	}

	ld := &adminv3.ListenersConfigDump{VersionInfo: s.versions[typeListener]}
	for _, l := range s.bs.GetStaticResources().GetListeners() {
		ld.StaticListeners = append(ld.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: mustAny(l), LastUpdated: timestamppb.New(s.started)})
	}
	for _, n := range sortedKeys(s.listeners) {
		r := s.listeners[n]
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: n, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: r.version, Listener: mustAny(r.msg), LastUpdated: timestamppb.New(r.lastUpdated)}})
	}

	rd := &adminv3.RoutesConfigDump{}
	for _, n := range sortedKeys(s.routes) {
		r := s.routes[n]
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: r.version, RouteConfig: mustAny(r.msg), LastUpdated: timestamppb.New(r.lastUpdated)})
	}
	sd := &adminv3.SecretsConfigDump{}
	for _, n := range sortedKeys(s.secrets) {
		e := s.secrets[n]
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{Name: n, VersionInfo: e.version, LastUpdated: timestamppb.New(e.lastUpdated), Secret: mustAny(redactSecret(e.secret))})
	}
	out := []proto.Message{bsDump, cd}
	if includeEDS {
		ed := &adminv3.EndpointsConfigDump{}
		for _, n := range sortedKeys(s.endpoints) {
			r := s.endpoints[n]
			ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: r.version, EndpointConfig: mustAny(r.msg), LastUpdated: timestamppb.New(r.lastUpdated)})
		}
		out = append(out, ed)
	}
	out = append(out, ld, &adminv3.ScopedRoutesConfigDump{}, rd, sd)
	return out
}

// adminConfigDump: /config_dump, ?include_eds, ?resource=<repeated field of a dump section> (each element of
// that field becomes one entry of "configs"), as Envoy's ConfigDumpHandler does.
func (s *server) adminConfigDump(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, includeEDS := q["include_eds"]
	sections := s.dumpSections(includeEDS || q.Get("resource") == "dynamic_endpoint_configs")
	out := &adminv3.ConfigDump{}
	resource := q.Get("resource")
	for _, sec := range sections {
		if resource == "" {
			out.Configs = append(out.Configs, mustAny(sec))
			continue
		}
		fd := sec.ProtoReflect().Descriptor().Fields().ByName(protoreflectName(resource))
		if fd == nil || !fd.IsList() || fd.Message() == nil {
			continue
		}
		list := sec.ProtoReflect().Get(fd).List()
		for i := 0; i < list.Len(); i++ {
			out.Configs = append(out.Configs, mustAny(list.Get(i).Message().Interface()))
		}
	}
	if resource != "" && !resourceExists(sections, resource) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "{\"error\":\"%s not found in config dump\"}\n", resource)
		return
	}
	writeJSON(w, out)
}

func resourceExists(sections []proto.Message, resource string) bool {
	for _, sec := range sections {
		if fd := sec.ProtoReflect().Descriptor().Fields().ByName(protoreflectName(resource)); fd != nil && fd.IsList() {
			return true
		}
	}
	return false
}

func certDetail(c *x509.Certificate, now time.Time) *adminv3.CertificateDetails {
	d := &adminv3.CertificateDetails{
		Path:           "<inline>",
		SerialNumber:   hex.EncodeToString(c.SerialNumber.Bytes()),
		ValidFrom:      timestamppb.New(c.NotBefore),
		ExpirationTime: timestamppb.New(c.NotAfter),
	}
	days := int64(c.NotAfter.Sub(now).Hours() / 24)
	if days < 0 {
		days = 0
	}
	d.DaysUntilExpiration = uint64(days)
	d.SubjectAltNames = []*adminv3.SubjectAlternateName{}
	for _, u := range c.URIs {
		d.SubjectAltNames = append(d.SubjectAltNames, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Uri{Uri: u.String()}})
	}
	for _, n := range c.DNSNames {
		d.SubjectAltNames = append(d.SubjectAltNames, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Dns{Dns: n}})
	}
	for _, ip := range c.IPAddresses {
		d.SubjectAltNames = append(d.SubjectAltNames, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_IpAddress{IpAddress: ip.String()}})
	}
	return d
}

// adminCerts: one Certificate per TLS context in use (listeners' filter chains, clusters' transport sockets),
// each with its CA and its chain; Envoy lists only the leaf of a chain.
func (s *server) adminCerts(w http.ResponseWriter, _ *http.Request) {
	now := s.clock()
	out := &adminv3.Certificates{Certificates: []*adminv3.Certificate{}}
	type pair struct{ cert, ca string }
	var contexts []pair
	s.mu.RLock()
	for _, n := range sortedKeys(s.listeners) {
		for _, fc := range allFilterChains(s.listeners[n].msg) {
			if names := transportSocketSecretNames(fc.GetTransportSocket()); len(names) > 0 {
				contexts = append(contexts, certPair(fc.GetTransportSocket()))
			}
		}
	}
	for _, n := range sortedKeys(s.clusters) {
		c := s.clusters[n].msg
		for _, ts := range clusterTransportSockets(c) {
			if names := transportSocketSecretNames(ts); len(names) > 0 {
				contexts = append(contexts, certPair(ts))
			}
		}
	}
	s.mu.RUnlock()
	for _, p := range contexts {
		entry := &adminv3.Certificate{CaCert: []*adminv3.CertificateDetails{}, CertChain: []*adminv3.CertificateDetails{}}
		if sec := s.lookupSecret(p.ca); sec != nil {
			for _, c := range secretCerts(sec) {
				entry.CaCert = append(entry.CaCert, certDetail(c, now))
			}
		}
		if sec := s.lookupSecret(p.cert); sec != nil {
			if cs := secretCerts(sec); len(cs) > 0 {
				entry.CertChain = append(entry.CertChain, certDetail(cs[0], now))
			}
		}
		out.Certificates = append(out.Certificates, entry)
	}
	writeJSONOpts(w, out, true)
}

func clusterTransportSockets(c *clusterv3.Cluster) []*corev3.TransportSocket {
	var out []*corev3.TransportSocket
	if c.GetTransportSocket() != nil {
		out = append(out, c.GetTransportSocket())
	}
	for _, m := range c.GetTransportSocketMatches() {
		out = append(out, m.GetTransportSocket())
	}
	return out
}

func certPair(ts *corev3.TransportSocket) struct{ cert, ca string } {
	var ctc *tlsv3.CommonTlsContext
	switch ts.GetTypedConfig().GetTypeUrl() {
	case dtlsType:
		d := &tlsv3.DownstreamTlsContext{}
		_ = ts.GetTypedConfig().UnmarshalTo(d)
		ctc = d.GetCommonTlsContext()
	case utlsType:
		u := &tlsv3.UpstreamTlsContext{}
		_ = ts.GetTypedConfig().UnmarshalTo(u)
		ctc = u.GetCommonTlsContext()
	}
	var p struct{ cert, ca string }
	if scs := ctc.GetTlsCertificateSdsSecretConfigs(); len(scs) > 0 {
		p.cert = scs[0].GetName()
	}
	if cv := ctc.GetCombinedValidationContext(); cv != nil {
		p.ca = cv.GetValidationContextSdsSecretConfig().GetName()
	} else if v := ctc.GetValidationContextSdsSecretConfig(); v != nil {
		p.ca = v.GetName()
	}
	return p
}

func (s *server) adminServerInfo(w http.ResponseWriter, _ *http.Request) {
	uptime := s.clock().Sub(s.started)
	info := &adminv3.ServerInfo{
		Version:            standinVersion,
		State:              adminv3.ServerInfo_State(s.state.Load()),
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: durationpb.New(uptime.Truncate(time.Second)),
		UptimeAllEpochs:    durationpb.New(uptime.Truncate(time.Second)),
		Node:               (&adsClient{s: s}).node(),
		CommandLineOptions: &adminv3.CommandLineOptions{
			BaseId:                     uint64(s.opts.baseID),
			Concurrency:                uint32(s.opts.concurrency),
			ConfigPath:                 s.opts.configPath,
			ConfigYaml:                 s.opts.configYAML,
			AllowUnknownStaticFields:   s.opts.allowUnknownStatic,
			RejectUnknownDynamicFields: s.opts.rejectUnknownDynamic,
			LogLevel:                   s.opts.logLevel,
			ComponentLogLevel:          s.opts.componentLogLevel,
			LogFormat:                  s.opts.logFormat,
			LogPath:                    s.opts.logPath,
			ServiceCluster:             s.opts.serviceCluster,
			ServiceNode:                s.opts.serviceNode,
			ServiceZone:                s.opts.serviceZone,
			FileFlushInterval:          durationpb.New(time.Duration(s.opts.fileFlushIntervalMsec) * time.Millisecond),
			DrainTime:                  durationpb.New(time.Duration(s.opts.drainTimeS) * time.Second),
			ParentShutdownTime:         durationpb.New(time.Duration(s.opts.parentShutdownTimeS) * time.Second),
			DisableHotRestart:          s.opts.disableHotRestart,
			EnableCoreDump:             s.opts.enableCoreDump,
			SkipDeprecatedLogs:         s.opts.skipDeprecatedLogs,
		},
	}
	if s.opts.localAddressIPVersion == "v6" {
		info.CommandLineOptions.LocalAddressIpVersion = adminv3.CommandLineOptions_v6
	}
	if s.opts.drainStrategy == "immediate" {
		info.CommandLineOptions.DrainStrategy = adminv3.CommandLineOptions_Immediate
	}
	if s.opts.mode == "validate" {
		info.CommandLineOptions.Mode = adminv3.CommandLineOptions_Validate
	}
	writeJSONOpts(w, info, true)
}

// adminClusters: /clusters text (TextClustersChunkProcessor order: cluster lines, then per host stats
// alphabetically, hostname, health_flags, weight, region, zone, sub_zone, canary, priority, success rates).
func (s *server) adminClusters(w http.ResponseWriter, r *http.Request) {
	textPlain(w)
	s.mu.RLock()
	names := append(sortedKeys(s.staticClusters), sortedKeys(s.clusters)...)
	s.mu.RUnlock()
	var b strings.Builder
	for _, n := range names {
		c := s.lookupCluster(n)
		if c == nil {
			continue
		}
		obs := clusterStatName(c)
		fmt.Fprintf(&b, "%s::observability_name::%s\n", n, obs)
		for _, prio := range []string{"default_priority", "high_priority"} {
			fmt.Fprintf(&b, "%s::%s::max_connections::1024\n%s::%s::max_pending_requests::1024\n%s::%s::max_requests::1024\n%s::%s::max_retries::3\n", n, prio, n, prio, n, prio, n, prio)
		}
		_, dynamic := s.clusters[n]
		fmt.Fprintf(&b, "%s::added_via_api::%v\n", n, dynamic)
		if c.GetType() == clusterv3.Cluster_EDS {
			fmt.Fprintf(&b, "%s::eds_service_name::%s\n", n, edsName(c))
		}
		cla := s.clusterLoadAssignment(c)
		for _, le := range cla.GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				addr := socketAddrString(lb.GetEndpoint().GetAddress())
				h := n + "::" + addr + "::"
				for _, st := range []string{"cx_active", "cx_connect_fail", "cx_total", "rq_active", "rq_error", "rq_success", "rq_timeout", "rq_total"} {
					fmt.Fprintf(&b, "%s%s::0\n", h, st)
				}
				fmt.Fprintf(&b, "%shostname::%s\n", h, lb.GetEndpoint().GetHostname())
				flags := "healthy"
				if hs := lb.GetHealthStatus(); hs != corev3.HealthStatus_UNKNOWN && hs != corev3.HealthStatus_HEALTHY {
					flags = "/eds_health_status"
				}
				weight := lb.GetLoadBalancingWeight().GetValue()
				if weight == 0 {
					weight = 1
				}
				fmt.Fprintf(&b, "%shealth_flags::%s\n%sweight::%d\n%sregion::%s\n%szone::%s\n%ssub_zone::%s\n%scanary::false\n%spriority::%d\n%ssuccess_rate::-1\n%slocal_origin_success_rate::-1\n",
					h, flags, h, weight, h, le.GetLocality().GetRegion(), h, le.GetLocality().GetZone(), h, le.GetLocality().GetSubZone(), h, h, le.GetPriority(), h, h)
			}
		}
	}
	fmt.Fprint(w, b.String())
}

func (s *server) adminListeners(w http.ResponseWriter, _ *http.Request) {
	textPlain(w)
	s.listenerMgr.mu.Lock()
	var lines []string
	for n, al := range s.listenerMgr.byName {
		lines = append(lines, fmt.Sprintf("%s::%s", n, al.addr))
	}
	s.listenerMgr.mu.Unlock()
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func (s *server) adminQuit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		adminMethodNotAllowed(w)
		return
	}
	textPlain(w)
	fmt.Fprint(w, "OK\n")
	s.logf("info", "main", "shutting down server instance")
	go func() {
		time.Sleep(50 * time.Millisecond)
		if s.shutdown != nil {
			s.shutdown()
		} else {
			os.Exit(0)
		}
	}()
}

func (s *server) adminDrain(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		adminMethodNotAllowed(w)
		return
	}
	s.setState(stateDraining)
	textPlain(w)
	fmt.Fprint(w, "OK\n")
}

func (s *server) adminHealthFail(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		adminMethodNotAllowed(w)
		return
	}
	s.setState(stateDraining)
	textPlain(w)
	fmt.Fprint(w, "OK\n")
}

func (s *server) adminHealthOK(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		adminMethodNotAllowed(w)
		return
	}
	select {
	case <-s.liveCh:
		s.setState(stateLive)
	default:
	}
	textPlain(w)
	fmt.Fprint(w, "OK\n")
}
