// Command envoy is the lab's Envoy stand-in: started by the real pilot-agent exactly as Envoy is
// (pkg/envoy/proxy.go in istio.io/istio builds the command line), it reads the bootstrap pilot-agent rendered,
// speaks ADS (delta or state-of-the-world) to pilot-agent's XDS socket and SDS to its workload socket, serves
// Envoy's admin endpoints, and proxies traffic as the received listeners, routes, clusters and endpoints say.
// See README.md for what is implemented and which Envoy behaviour each part follows.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Version reported by --version and /server_info; the stand-in claims no real Envoy build.
const standinVersion = "envoy-standin/1.37.0/Clean/RELEASE/BoringSSL-standin"

type options struct {
	configPath            string
	configYAML            string
	drainTimeS            int
	drainStrategy         string
	localAddressIPVersion string
	logLevel              string
	componentLogLevel     string
	logFormat             string
	logPath               string
	concurrency           int
	parentShutdownTimeS   int
	fileFlushIntervalMsec int
	fileFlushMinSizeKB    int
	baseID                int
	serviceCluster        string
	serviceNode           string
	serviceZone           string
	disableHotRestart     bool
	allowUnknownStatic    bool
	rejectUnknownDynamic  bool
	skipDeprecatedLogs    bool
	enableCoreDump        bool
	mode                  string
	version               bool
}

// parseFlags accepts Envoy's command line (https://www.envoyproxy.io/docs/envoy/latest/operations/cli),
// at least every flag pilot-agent passes (pkg/envoy/proxy.go: args()).
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("envoy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "c", "", "Path to configuration file")
	fs.StringVar(&o.configPath, "config-path", "", "Path to configuration file")
	fs.StringVar(&o.configYAML, "config-yaml", "", "YAML string for a v3 bootstrap proto")
	fs.IntVar(&o.drainTimeS, "drain-time-s", 600, "Hot restart and LDS removal drain time in seconds")
	fs.StringVar(&o.drainStrategy, "drain-strategy", "gradual", "gradual or immediate")
	fs.StringVar(&o.localAddressIPVersion, "local-address-ip-version", "v4", "v4 or v6")
	fs.StringVar(&o.logLevel, "l", "info", "Log levels")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log levels")
	fs.StringVar(&o.componentLogLevel, "component-log-level", "", "Comma-separated component:level list")
	fs.StringVar(&o.logFormat, "log-format", "[%Y-%m-%d %T.%e][%t][%l][%n] %v", "Log message format")
	fs.StringVar(&o.logPath, "log-path", "", "Path to logfile")
	fs.IntVar(&o.concurrency, "concurrency", 2, "Number of worker threads")
	fs.IntVar(&o.parentShutdownTimeS, "parent-shutdown-time-s", 900, "Hot restart parent shutdown time")
	fs.IntVar(&o.fileFlushIntervalMsec, "file-flush-interval-msec", 10000, "Interval for log flushing")
	fs.IntVar(&o.fileFlushMinSizeKB, "file-flush-min-size-kb", 64, "Minimum size of file buffer")
	fs.IntVar(&o.baseID, "base-id", 0, "Base ID for shared memory regions")
	fs.StringVar(&o.serviceCluster, "service-cluster", "", "Cluster name")
	fs.StringVar(&o.serviceNode, "service-node", "", "Node name")
	fs.StringVar(&o.serviceZone, "service-zone", "", "Zone name")
	fs.BoolVar(&o.disableHotRestart, "disable-hot-restart", false, "Disable hot restart")
	fs.BoolVar(&o.allowUnknownStatic, "allow-unknown-static-fields", false, "Allow unknown fields in static configuration")
	fs.BoolVar(&o.rejectUnknownDynamic, "reject-unknown-dynamic-fields", false, "Reject unknown fields in dynamic configuration")
	fs.BoolVar(&o.skipDeprecatedLogs, "skip-deprecated-logs", false, "Skip deprecated logs")
	fs.BoolVar(&o.enableCoreDump, "enable-core-dump", false, "Enable core dumps")
	fs.StringVar(&o.mode, "mode", "serve", "serve or validate")
	fs.BoolVar(&o.version, "version", false, "Print version")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument: %s", fs.Arg(0))
	}
	switch o.localAddressIPVersion {
	case "v4", "v6":
	default:
		return nil, fmt.Errorf("error: unknown IP address version '%s'", o.localAddressIPVersion)
	}
	switch o.drainStrategy {
	case "gradual", "immediate":
	default:
		return nil, fmt.Errorf("error: unknown drain strategy '%s'", o.drainStrategy)
	}
	return o, nil
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if opts.version {
		fmt.Printf("\n%s version: %s\n\n", os.Args[0], standinVersion)
		return
	}
	logger := log.New(os.Stderr, "", 0)
	bs, err := loadBootstrap(opts.configPath, opts.configYAML)
	if err != nil {
		logger.Printf("[critical][main] error initializing configuration '%s': %v", opts.configPath, err)
		os.Exit(1)
	}
	if opts.mode == "validate" {
		fmt.Printf("configuration '%s' OK\n", opts.configPath)
		return
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	srv := newServer(bs, opts, os.Args, logger)
	if err := srv.run(ctx); err != nil {
		srv.logf("critical", "main", "%v", err)
		os.Exit(1)
	}
	srv.logf("info", "main", "exiting")
}

// logf writes Envoy-like log lines ([time][level][component] msg); level filtering by -l.
func (s *server) logf(level, component, format string, a ...any) {
	order := map[string]int{"trace": 0, "debug": 1, "info": 2, "warning": 3, "warn": 3, "error": 4, "critical": 5, "off": 6}
	want, ok := order[strings.SplitN(s.opts.logLevel, ",", 2)[0]]
	if !ok {
		want = 2
	}
	if order[level] < want {
		return
	}
	// Envoy's default --log-format "[%Y-%m-%d %T.%e][%t][%l][%n] %v" (%t: thread id; the process id here)
	s.logger.Printf("[%s][%d][%s][%s] %s", s.clock().UTC().Format("2006-01-02 15:04:05.000"), os.Getpid(), level, component, fmt.Sprintf(format, a...))
}
