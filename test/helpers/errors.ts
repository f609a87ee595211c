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
