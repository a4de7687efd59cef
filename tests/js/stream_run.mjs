// LangGraph's JS client (@langchain/langgraph-sdk) against a graphnursery server: search the
// assistants, then stream one run of the `chat` graph, printing what the client received as
// one JSON document on stdout (tests/acceptance/test_langgraph_js_client.py reads it).
//
//   node stream_run.mjs [--thread] URL
//
// Without --thread the run is stateless (POST /runs/stream); with it, the run is on a new
// thread (POST /threads, then POST /threads/{thread_id}/runs/stream).
// Any failure: its message on stderr, exit status 1.
import { Client } from "@langchain/langgraph-sdk";

const INPUT = { messages: [{ role: "user", content: "stream, please" }] };
const STREAM_MODE = ["values", "updates", "messages-tuple"];

function parseArgs(argv) {
  const flags = argv.filter((arg) => arg.startsWith("--"));
  const rest = argv.filter((arg) => !arg.startsWith("--"));
  const unknown = flags.filter((flag) => flag !== "--thread");
  if (rest.length !== 1 || unknown.length) {
    throw new Error(`usage: node stream_run.mjs [--thread] URL (got ${argv.join(" ")})`);
  }
  return { apiUrl: rest[0], onThread: flags.includes("--thread") };
}

async function main() {
  const { apiUrl, onThread } = parseArgs(process.argv.slice(2));
  // apiKey null: no key from LANGGRAPH_API_KEY & co. in the environment.
  const client = new Client({ apiUrl, apiKey: null });

  const assistants = await client.assistants.search();
  const thread = onThread ? await client.threads.create() : null;

  const events = [];
  const eventData = [];
  let tokens = "";
  const messageTypes = new Set(); // of the chunks: one message, streamed, has one type
  const messageIds = new Set(); // and one id (chunks merge by id)
  let lastValues = null;
  let runCreated = null;
  const stream = client.runs.stream(thread?.thread_id ?? null, "chat", {
    input: INPUT,
    streamMode: STREAM_MODE,
    onRunCreated: (run) => {
      runCreated = run; // from the response's Content-Location
    },
  });
  for await (const part of stream) {
    events.push(part.event);
    eventData.push(part.data);
    if (part.event === "messages") {
      const [message] = part.data; // messages-tuple: [message chunk, metadata]
      tokens += typeof message.content === "string" ? message.content : "";
      messageTypes.add(message.type ?? null);
      messageIds.add(message.id ?? null);
    } else if (part.event === "values") {
      lastValues = part.data;
    }
  }

  const output = {
    assistants: assistants.map((assistant) => assistant.graph_id),
    thread_id: thread?.thread_id ?? null,
    events,
    metadata: events[0] === "metadata" ? eventData[0] : null,
    run_created: runCreated,
    tokens,
    message_types: [...messageTypes],
    message_ids: [...messageIds],
    last_values: lastValues,
    errors: eventData.filter((_, index) => events[index] === "error"),
  };
  process.stdout.write(`${JSON.stringify(output)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
