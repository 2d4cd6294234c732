// An s.yaml resolved by Serverless Devs' own parser (@serverless-devs/parse-spec, pinned in package-lock.json), as
// `s deploy` resolves it before any component runs: prints {"<resource>": props} as JSON. A failure (a magic
// variable "not found") prints its message on stderr and exits 1. Usage: node resolve.js path/to/s.yaml
const ParseSpec = require('@serverless-devs/parse-spec').default;

const say = (...words) => process.stderr.write(`${words.join(' ')}\n`);
const logger = { debug() {}, info: say, warn: say, warnOnce: say, tips: say, error: say };

new ParseSpec(process.argv[2], { argv: ['deploy'], logger }).start().then(
  (spec) => {
    const props = Object.fromEntries(spec.steps.map((step) => [step.projectName, step.props]));
    process.stdout.write(JSON.stringify(props));
  },
  (error) => {
    say(error.message);
    process.exit(1);
  },
);
