/** What a promise rejected with; fails if it resolves (disposing what it resolved to). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    async (value) => {
      await (value as { dispose?: () => unknown } | null | undefined)?.dispose?.();
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

/** What `fn` threw; fails if it returns. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

type ErrorClass = new (...args: never[]) => Error;

/** Fails unless `fn` throws an instance of Class with this code. */
export function expectThrow(fn: () => unknown, Class: ErrorClass, code: string): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(Class);
  expect((error as { code?: unknown }).code).toBe(code);
}

/** Fails unless `promise` rejects with an instance of Class with this code. */
export async function expectRejection(promise: Promise<unknown>, Class: ErrorClass, code: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(Class);
  expect((error as { code?: unknown }).code).toBe(code);
}
