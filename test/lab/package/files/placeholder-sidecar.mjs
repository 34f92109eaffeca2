// Placeholder for the Envoy/pilot-agent simulator: test/lab/sidecar/main.ts did not exist when this
// package was built. It says so and fails, so nothing can mistake it for a working sidecar.
const binary = process.env.ISTIO_LAB_BINARY ?? 'pilot-agent';
process.stderr.write(
  `${binary} (istio lab placeholder): the sidecar simulator is not built yet (test/lab/sidecar/main.ts missing)\n`,
);
process.exit(1);
