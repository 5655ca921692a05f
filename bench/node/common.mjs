// Shared by the Node benchmarks: reading the data, best-of-N timing, the one-line result.
import fs from 'node:fs';
import path from 'node:path';

export function load(dir) {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
  return {
    meta,
    csv: fs.readFileSync(path.join(dir, 'usage.csv'), 'utf8'),
    contracts: fs.readFileSync(path.join(dir, 'contracts.json'), 'utf8'),
    dir,
  };
}

// Runs f `runs` times; returns the best wall time and the best CPU time (user + system of the
// whole process, GC and compiler threads included) in seconds, and the last result.
export function best(runs, f) {
  let bestS = Infinity;
  let bestCpu = Infinity;
  let result;
  for (let i = 0; i < runs; i++) {
    result = undefined; // let the previous result be collected before the next run
    const c = process.cpuUsage();
    const t = process.hrtime.bigint();
    result = f();
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    const cu = process.cpuUsage(c);
    bestS = Math.min(bestS, s);
    bestCpu = Math.min(bestCpu, (cu.user + cu.system) / 1e6);
  }
  return { seconds: bestS, cpu_seconds: bestCpu, result };
}

// One JSON line on stdout, read by bench/run.sh.
export function report(name, records, seconds, extra = {}) {
  console.log(JSON.stringify({ name, records, seconds, ...extra }));
}

// The cells of one CSV line: commas, and double quotes around a cell ("1,5"). The benchmark
// files have no line breaks inside cells.
export function cells(line) {
  if (!line.includes('"')) return line.split(',');
  const out = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        cur += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}

export const runsArg = () => Number(process.env.BENCH_RUNS ?? 3);
