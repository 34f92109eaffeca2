// ESLint (flat config): JavaScript's and typescript-eslint's recommended rules over the sources, tests,
// scripts and bench; `npm run lint` is part of `npm test`. The bundles in dist/ are generated.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.lab/', 'bench/runs/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' },
    },
    rules: {
      // Off: the code gives a variable a safe default before a try whose catch sets it again, on purpose.
      'no-useless-assignment': 'off',
      // Lines of code and comments stay within 120 columns (Prettier's width); long messages and shell
      // inside string literals are exempt.
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
      // A `let` that closures defined before its assignment read (shutdown handlers, watchers) stays a let.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // `_name` marks a parameter or binding kept for its position or to drop it from a rest object.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    // In the sources messages count too: split a long one at a word boundary (Prettier does not wrap
    // strings). Shell lives in the .sh files next to the code, which shellcheck reads.
    files: ['src/**/*.ts'],
    rules: { 'max-len': ['error', { code: 120, ignoreRegExpLiterals: true, ignoreUrls: true }] },
  },
);
