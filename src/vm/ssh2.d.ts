// The part of ssh2 this project calls directly (the package ships no type declarations; node-ssh
// wraps the rest).
declare module 'ssh2' {
  interface ParsedKey {
    type: string;
    isPrivateKey(): boolean;
  }
  const ssh2: {
    utils: {
      parseKey(key: string | Buffer, passphrase?: string | Buffer): Error | ParsedKey | ParsedKey[];
    };
  };
  export default ssh2;
}
