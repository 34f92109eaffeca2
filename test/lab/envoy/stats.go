package main

// Stats store rendered as Envoy's admin /stats (text) and /stats/prometheus.
//
// Follows: Envoy admin docs (https://www.envoyproxy.io/docs/envoy/latest/operations/admin#get--stats),
// the bootstrap's stats_config (stats_matcher inclusion list and stats_tags, rendered by pilot-agent from
// tools/packaging/common/envoy_bootstrap.json), and ../shared/envoy-reference/stats/*.txt.

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

type statKind int

const (
	counterStat statKind = iota
	gaugeStat
)

type stat struct {
	kind  statKind
	value uint64
	used  bool
}

// statsMatcher is Envoy's stats_matcher: with an inclusion list only matching stats are instantiated.
type statsMatcher struct {
	acceptAll bool
	rejectAll bool
	inclusion []*matcherv3.StringMatcher
	exclusion []*matcherv3.StringMatcher
	regexps   map[string]*regexp.Regexp
}

func newStatsMatcher(cfg *bootstrapv3.Bootstrap) *statsMatcher {
	m := &statsMatcher{acceptAll: true, regexps: map[string]*regexp.Regexp{}}
	sm := cfg.GetStatsConfig().GetStatsMatcher()
	if sm == nil {
		return m
	}
	switch {
	case sm.GetInclusionList() != nil:
		m.acceptAll = false
		m.inclusion = sm.GetInclusionList().GetPatterns()
	case sm.GetExclusionList() != nil:
		m.exclusion = sm.GetExclusionList().GetPatterns()
	case sm.GetRejectAll():
		m.acceptAll = false
		m.rejectAll = true
	}
	return m
}

func (m *statsMatcher) matchOne(p *matcherv3.StringMatcher, name string) bool {
	switch x := p.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return name == x.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(name, x.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(name, x.Suffix)
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(name, x.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, ok := m.regexps[x.SafeRegex.GetRegex()]
		if !ok {
			// Envoy's safe_regex (RE2) must match the whole string.
			re, _ = regexp.Compile("^(?:" + x.SafeRegex.GetRegex() + ")$")
			m.regexps[x.SafeRegex.GetRegex()] = re
		}
		return re != nil && re.MatchString(name)
	}
	return false
}

func (m *statsMatcher) includes(name string) bool {
	if m.rejectAll {
		return false
	}
	if m.acceptAll {
		for _, p := range m.exclusion {
			if m.matchOne(p, name) {
				return false
			}
		}
		return true
	}
	for _, p := range m.inclusion {
		if m.matchOne(p, name) {
			return true
		}
	}
	return false
}

type statsStore struct {
	mu      sync.Mutex
	matcher *statsMatcher
	stats   map[string]*stat
	// histograms: only server.initialization_time_ms, as one recorded value.
	initTimeMs *float64
}

func newStatsStore(m *statsMatcher) *statsStore {
	return &statsStore{matcher: m, stats: map[string]*stat{}}
}

func (s *statsStore) ensure(name string, kind statKind) *stat {
	st, ok := s.stats[name]
	if !ok {
		st = &stat{kind: kind}
		s.stats[name] = st
	}
	return st
}

// define instantiates a stat without marking it used (Envoy creates stats at zero; usedonly hides them).
func (s *statsStore) define(name string, kind statKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure(name, kind)
}

func (s *statsStore) inc(name string) { s.add(name, 1) }

func (s *statsStore) add(name string, by uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.ensure(name, counterStat)
	st.value += by
	st.used = true
}

func (s *statsStore) set(name string, v uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.ensure(name, gaugeStat)
	st.value = v
	st.used = true
}

// gaugeAdd adds a signed delta to a gauge.
func (s *statsStore) gaugeAdd(name string, delta int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.ensure(name, gaugeStat)
	st.value = uint64(int64(st.value) + delta)
	st.used = true
}

func (s *statsStore) get(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stats[name]; ok {
		return st.value
	}
	return 0
}

func (s *statsStore) recordInitTime(ms float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initTimeMs = &ms
}

type namedStat struct {
	name string
	st   stat
}

func (s *statsStore) visible() []namedStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]namedStat, 0, len(s.stats))
	for n, st := range s.stats {
		if s.matcher.includes(n) {
			out = append(out, namedStat{n, *st})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// renderText is GET /stats: "name: value" sorted, histograms after; usedonly and filter (RE2, partial match).
func (s *statsStore) renderText(usedOnly bool, filter *regexp.Regexp) string {
	var b strings.Builder
	for _, ns := range s.visible() {
		if usedOnly && !ns.st.used {
			continue
		}
		if filter != nil && !filter.MatchString(ns.name) {
			continue
		}
		fmt.Fprintf(&b, "%s: %d\n", ns.name, ns.st.value)
	}
	h := "server.initialization_time_ms"
	s.mu.Lock()
	initTime := s.initTimeMs
	s.mu.Unlock()
	if initTime != nil && s.matcher.includes(h) && (filter == nil || filter.MatchString(h)) {
		qs := []string{"P0", "P25", "P50", "P75", "P90", "P95", "P99", "P99.5", "P99.9", "P100"}
		parts := make([]string, len(qs))
		for i, q := range qs {
			parts[i] = fmt.Sprintf("%s(nan,%s)", q, fmtFloat(*initTime))
		}
		fmt.Fprintf(&b, "%s: %s\n", h, strings.Join(parts, " "))
	}
	return b.String()
}

type promLabel struct{ k, v string }

var (
	clusterTagRe  = regexp.MustCompile(`^cluster\.(.+?);\.(.*)$`)
	listenerTagRe = regexp.MustCompile(`^listener\.([_.0-9]*|[_\[\]a-fA-F0-9:]*)\.(.*)$`)
	promSanitize  = regexp.MustCompile(`[^a-zA-Z0-9_]`)
)

// extractTags applies the bootstrap's stats_tags that matter here: Istio's "k=.=v;.;" tag encoding
// (istio.stats filter), cluster_name ("^cluster(\.(.+);)") and listener_address.
func extractTags(name string) (string, []promLabel) {
	if strings.Contains(name, "=.=") {
		parts := strings.Split(name, ";.;")
		metric := parts[len(parts)-1]
		var labels []promLabel
		for _, p := range parts[:len(parts)-1] {
			kv := strings.SplitN(p, "=.=", 2)
			if len(kv) == 2 {
				labels = append(labels, promLabel{kv[0], kv[1]})
			}
		}
		return metric, labels
	}
	if m := clusterTagRe.FindStringSubmatch(name); m != nil {
		return "cluster." + m[2], []promLabel{{"cluster_name", m[1]}}
	}
	if !strings.HasPrefix(name, "listener_manager") {
		if m := listenerTagRe.FindStringSubmatch(name); m != nil {
			return "listener." + m[2], []promLabel{{"listener_address", m[1]}}
		}
	}
	return name, nil
}

func promName(metric string) string {
	san := promSanitize.ReplaceAllString(metric, "_")
	if strings.HasPrefix(metric, "istio") {
		return san
	}
	return "envoy_" + san
}

func promEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// renderPrometheus is GET /stats/prometheus: counters, then gauges; one "# TYPE" line per family.
func (s *statsStore) renderPrometheus() string {
	type family struct {
		kind statKind
		rows []string
	}
	fams := map[string]*family{}
	for _, ns := range s.visible() {
		metric, labels := extractTags(ns.name)
		fam := promName(metric)
		parts := make([]string, len(labels))
		for i, l := range labels {
			parts[i] = fmt.Sprintf(`%s="%s"`, l.k, promEscape(l.v))
		}
		f, ok := fams[fam]
		if !ok {
			f = &family{kind: ns.st.kind}
			fams[fam] = f
		}
		f.rows = append(f.rows, fmt.Sprintf("%s{%s} %d", fam, strings.Join(parts, ","), ns.st.value))
	}
	var b strings.Builder
	for _, kind := range []statKind{counterStat, gaugeStat} {
		names := make([]string, 0)
		for n, f := range fams {
			if f.kind == kind {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			t := "counter"
			if kind == gaugeStat {
				t = "gauge"
			}
			fmt.Fprintf(&b, "# TYPE %s %s\n", n, t)
			for _, r := range fams[n].rows {
				b.WriteString(r + "\n")
			}
		}
	}
	return b.String()
}
