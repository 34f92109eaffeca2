export * from './stats-text.js';
export * from './prometheus.js';
export * from './certs.js';
