import { existsSync } from 'fs';
import { join } from 'path';

import { IoError } from '../errors';
import { LoadModelOptions, Model, loadModel } from './Model';

/** File name of the embedded model under the package's models/ directory. */
export const defaultModelFile = 'brown-6m.q8_0.gguf';

/**
 * The path of the model embedded in the package: a 6 M-parameter deepseek2 (MLA + MoE)
 * trained on the Brown corpus by tools/train-default. It writes English-looking text, no
 * more: it exists so a fresh install can be seen working without a download. Real use
 * means a real DeepSeek GGUF.
 */
export function defaultModelPath(): string {
  // dist/api/ -> package root; lib/api/ under ts-jest.
  const path = join(__dirname, '..', '..', 'models', defaultModelFile);
  if (!existsSync(path)) throw new IoError('IO_ERROR', `the embedded default model is missing from the package: ${path}`);
  return path;
}

/** Loads the embedded default model (see defaultModelPath). */
export function loadDefaultModel(options: LoadModelOptions = {}): Promise<Model> {
  return loadModel(defaultModelPath(), options);
}
