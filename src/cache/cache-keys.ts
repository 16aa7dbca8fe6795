/**
 * Cache key names shared by the jobs that write data and the cache that
 * serves it, so an invalidation names exactly what a read cached.
 */
export const cacheKeys = {
  escrowBalance: (escrowAccountId: string) => `escrow:balance:${escrowAccountId}`,
  user: (userId: string) => `user:${userId}`,
  invoice: (invoiceId: string) => `invoice:${invoiceId}`,
  globalCounts: () => "counts:global",
} as const;
