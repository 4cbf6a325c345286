/* rvpp's view of DPDK: the headers bindgen reads, and C wrappers for DPDK's static-inline
 * fast-path functions (which have no symbol to link against). */
#ifndef RVPP_DPDK_SHIM_H
#define RVPP_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

uint16_t rvpp_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvpp_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *rvpp_pktmbuf_alloc(struct rte_mempool *mp);
int rvpp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void rvpp_pktmbuf_free(struct rte_mbuf *m);
void rvpp_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);
void *rvpp_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rvpp_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t rvpp_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvpp_pktmbuf_tailroom(const struct rte_mbuf *m);
/* Make m a single-segment packet of len bytes (len <= tailroom + data_len). */
void rvpp_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len);
/* Append a segment; returns 0 or -1 when the chain is too long. */
int rvpp_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
unsigned rvpp_mempool_avail(const struct rte_mempool *mp);
int rvpp_errno(void);
unsigned rvpp_lcore_id(void);
/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP (function-like macros bindgen cannot see). */
uint64_t rvpp_rss_hf_default(void);
/* The byte offset of the packet data in the first mbuf's buffer, and sizeof(struct rte_mbuf). */
unsigned rvpp_mbuf_size(void);

/* Set the data room a pktmbuf pool advertises (ethdev checks it at rx queue setup) without
 * changing its mbufs: for pools of data-less mbufs whose buffers rvpp attaches itself. */
void rvpp_mempool_set_data_room(struct rte_mempool *mp, uint16_t room);
/* Point a direct mbuf's buffer at addr (len bytes; IOVA = VA) with the default headroom. */
void rvpp_mbuf_set_buf(struct rte_mbuf *m, void *addr, uint16_t len);

/* Hot loops kept on the C side so that the inline mbuf accessors inline. */

/* Copy each mbuf's packet (all segments, up to cap bytes) to dst[i] and store its full length
 * in len[i]. A packet longer than cap is copied only partly (the caller continues it into more
 * buffers). The mbufs are left to the caller to free. */
void rvpp_copy_out(struct rte_mbuf *const *mbufs, uint16_t n, uint8_t *const *dst,
		   uint32_t *len, uint32_t cap);
/* Allocate n mbufs from mp and copy src[i] (len[i] bytes) into each, chaining segments when a
 * packet is longer than one mbuf. Returns how many were built (all or none on pool exhaustion). */
uint16_t rvpp_copy_in_alloc(struct rte_mempool *mp, struct rte_mbuf **mbufs, uint16_t n,
			    const uint8_t *const *src, const uint32_t *len);

#endif
