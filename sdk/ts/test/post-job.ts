// Posts a job through viem with the package's typed ABIs and addresses, and reads it back:
// the sequence computeshare/client.py's `post_job` sends (approve, deposit, post), then the
// JobPosted event and JobEscrowView's `job` view. tests/test_typed_abi.py compiles it with
// tsc (the type check is part of the test) and runs it against a node with the suite
// deployed: node dist/test/post-job.js <rpc url> <client address>. Prints one JSON line.
import {
  createPublicClient,
  createWalletClient,
  http,
  keccak256,
  parseEventLogs,
  stringToHex,
  type Address,
} from "viem";
import {
  abis,
  addressOf,
  computeTokenAbi,
  jobEscrowAbi,
  jobEscrowViewAbi,
} from "../src/index.js";

declare const process: { argv: string[] }; // Node's, without @types/node

const [url, client] = process.argv.slice(2) as [string, Address];
if (!url || !client) {
  throw new Error("usage: post-job.js <rpc url> <client address>");
}
const publicClient = createPublicClient({ transport: http(url) });
const chainId = await publicClient.getChainId();
const chain = {
  id: chainId,
  name: "computeshare-test",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [url] } },
} as const;
// The node holds the key: eth_sendTransaction from an unlocked account.
const wallet = createWalletClient({ account: client, chain, transport: http(url) });

const token = addressOf(chainId, "ComputeToken");
const escrow = addressOf(chainId, "JobEscrow");
const view = addressOf(chainId, "JobEscrowView");

async function send(hash: `0x${string}`) {
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted`);
  return receipt;
}

const price = 10n * 10n ** 18n;
const replicas = 1n;
const spec = stringToHex(
  JSON.stringify({ workload: "sha256-chain", input: { seed: "viem", rounds: 1 } }),
);
// A CPU job: any device, priced for 60 seconds of compute.
const requirements = {
  min_cpu_cores: 0,
  min_memory_mb: 0,
  min_gpu_count: 0,
  min_vram_mb: 0,
  region: 0,
  attested_only: false,
  compute_seconds: 60,
} as const;

const before = await publicClient.readContract({
  address: escrow,
  abi: jobEscrowAbi,
  functionName: "balanceOf",
  args: [client],
});
await send(
  await wallet.writeContract({
    address: token,
    abi: computeTokenAbi,
    functionName: "approve",
    args: [escrow, price * replicas],
  }),
);
await send(
  await wallet.writeContract({
    address: escrow,
    abi: jobEscrowAbi,
    functionName: "deposit",
    args: [price * replicas],
  }),
);
const block = await publicClient.getBlock();
const deadline = block.timestamp + 3_600n;
const args = [spec, requirements, price, replicas, deadline, price] as const;
// The simulation returns the id `post` will give the job (typed: `0x${string}`).
const { result: simulatedId } = await publicClient.simulateContract({
  account: client,
  address: escrow,
  abi: jobEscrowAbi,
  functionName: "post",
  args,
});
const receipt = await send(
  await wallet.writeContract({ address: escrow, abi: jobEscrowAbi, functionName: "post", args }),
);
const [posted] = parseEventLogs({
  abi: abis.JobEscrow,
  eventName: "JobPosted",
  logs: receipt.logs,
});
if (posted === undefined) throw new Error("no JobPosted event in the receipt");
const { job_id: jobId, terms } = posted.args;
const state = await publicClient.readContract({
  address: view,
  abi: jobEscrowViewAbi,
  functionName: "job",
  args: [jobId],
});

// Never called: what the ABI's types refuse (tsc fails if either line is accepted).
export function refusedByTheTypes() {
  return [
    // @ts-expect-error: JobEscrow has no function `post_job`
    publicClient.readContract({ address: escrow, abi: jobEscrowAbi, functionName: "post_job" }),
    publicClient.readContract({
      address: escrow,
      abi: jobEscrowAbi,
      functionName: "balanceOf",
      // @ts-expect-error: `balanceOf` takes an address, not an amount
      args: [1n],
    }),
  ];
}

console.log(
  JSON.stringify({
    chainId,
    jobId,
    simulatedId,
    client: terms.client,
    price: terms.price_per_replica.toString(),
    replicas: terms.replicas.toString(),
    deadline: terms.deadline.toString(),
    specHash: terms.spec_hash,
    expectedSpecHash: keccak256(spec),
    status: Number(state.status),
    escrowBefore: before.toString(),
  }),
);
