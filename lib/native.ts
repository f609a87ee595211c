/**
 * Loads the native addon (a prebuild from prebuilds/, else the cmake-js build in
 * build/Release) and declares what it exports.
 */
import * as path from 'path';

import { DeepmlaError } from './errors';

export interface NativeGgufMetadataEntry {
  key: string;
  /** GGUF value type name: 'uint8' ... 'float64', 'bool', 'string', 'array'. */
  type: string;
  /** For arrays: the element type name. */
  arrayType?: string;
  value: unknown;
}

export interface NativeGgufTensorInfo {
  name: string;
  /** GGUF spelling of the type ('f32', 'q8_0', 'q8_KV', ...). */
  type: string;
  typeId: number;
  /** Dimensions, innermost first, as stored in GGUF. */
  shape: number[];
  /** Offset from the start of the data section. */
  offset: number;
  nbytes: number;
}

export interface NativeGgufInfo {
  version: number;
  alignment: number;
  dataOffset: number;
  fileSize: number;
  metadata: NativeGgufMetadataEntry[];
  tensors: NativeGgufTensorInfo[];
}

/** Opaque handles (type-tagged externals). */
export type ModelHandle = { readonly __brand: 'ModelHandle' };
export type ContextHandle = { readonly __brand: 'ContextHandle' };
export type GraphHandle = { readonly __brand: 'GraphHandle' };

export interface NativeCacheDesc {
  name: string;
  type: number;
  rowLength: number;
  nRows: number;
  transposed: boolean;
  rowsPerSlot: number;
  ropeOffset: number;
  ropeDims: number;
}

export interface NativeRopeParams {
  nDims: number;
  freqBase: number;
  freqScale: number;
  extFactor: number;
  attnFactor: number;
  nCtxOrig: number;
  betaFast: number;
  betaSlow: number;
}

export interface NativeContextInfo {
  cacheBytes: number[];
  computeBufferBytes: number;
  threads: number;
}

export interface NativeBinding {
  loadModel(path: string, onProgress?: (fraction: number) => void, abortFlag?: Int32Array, resident?: boolean): Promise<ModelHandle>;
  disposeModel(model: ModelHandle): void;
  deriveLayout(model: ModelHandle, layout: 'split' | 'legacy', nLayer: number, nHead: number, nope: number, vDim: number, kvLora: number): Promise<number>;
  createContext(model: ModelHandle, options: { nCtx: number; threads: number; caches: NativeCacheDesc[] }): ContextHandle;
  contextInfo(context: ContextHandle): NativeContextInfo;
  disposeContext(context: ContextHandle): void;
  compileGraph(context: ContextHandle, graph: unknown): GraphHandle;
  measureGraph(context: ContextHandle, graph: unknown): number[];
  /** Writes the graph's logits into `logits` (exactly its size) and resolves with it. */
  evaluate(context: ContextHandle, graph: GraphHandle, tokens: Int32Array, positions: Int32Array, nPast: number, logits: Float32Array): Promise<Float32Array>;
  cpuInfo(): { detected: string; active: string };
  shiftContext(context: ContextHandle, keep: number, drop: number, nPast: number, rope: NativeRopeParams): Promise<string>;
  saveContext(context: ContextHandle, path: string, header: string, nPast: number): Promise<string>;
  loadContext(context: ContextHandle, path: string, nPast: number): Promise<string>;
  readContextHeader(path: string): string;
  inspectGguf(path: string): Promise<NativeGgufInfo>;
  /** Parses an in-memory GGUF image synchronously (tests, fuzzing). */
  inspectGgufBuffer(buffer: Uint8Array): NativeGgufInfo;
  /** Each row of `rowLength` values through the format's scalar reference quantize_row. */
  quantizeRows(typeId: number, values: Float32Array, rowLength: number): Uint8Array;
  [name: string]: unknown;
}

let cached: NativeBinding | undefined;

/**
 * The addon: DEEPMLA_ADDON if set (sanitizer and side-by-side builds), else what
 * node-gyp-build finds: a build from source in build/Release, else the prebuild for this
 * platform in prebuilds/ (no install script needs to have run: npm may skip it).
 */
export function native(): NativeBinding {
  if (cached) return cached;
  const root = path.resolve(__dirname, '..');
  const override = process.env.DEEPMLA_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    cached = override ? (require(path.resolve(override)) as NativeBinding) : load(root);
  } catch (error) {
    const cause = error instanceof Error ? error.message : String(error);
    const what = override
      ? `the addon named by DEEPMLA_ADDON (${path.resolve(override)}) did not load`
      : `no prebuilt addon fits ${process.platform}-${process.arch} (node ${process.version}) and none was built from source`;
    throw new DeepmlaError(
      'ADDON_NOT_FOUND',
      `deepmla: ${what}. Prebuilds cover linux-x64 with glibc >= 2.34. ` +
        `To build from source (cmake >= 3.16 and a C++17 compiler): ` +
        `DEEPMLA_BUILD_FROM_SOURCE=1 node ${JSON.stringify(path.join(root, 'tools', 'install.js'))}. Cause: ${cause}`,
      { cause: error },
    );
  }
  return cached;
}
