/* C wrappers for DPDK's static-inline fast-path functions; see shim.h. */
#include <string.h>
#include "shim.h"

uint16_t rvpp_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t rvpp_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *rvpp_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int rvpp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void rvpp_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void rvpp_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n)
{
	rte_pktmbuf_free_bulk(mbufs, n);
}

void *rvpp_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t rvpp_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t rvpp_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t rvpp_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

void rvpp_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
	m->pkt_len = len;
}

int rvpp_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail)
{
	return rte_pktmbuf_chain(head, tail);
}

unsigned rvpp_mempool_avail(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}

int rvpp_errno(void)
{
	return rte_errno;
}

unsigned rvpp_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t rvpp_rss_hf_default(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

unsigned rvpp_mbuf_size(void)
{
	return sizeof(struct rte_mbuf);
}

void rvpp_copy_out(struct rte_mbuf *const *mbufs, uint16_t n, uint8_t *const *dst,
		   uint32_t *len, uint32_t cap)
{
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mbufs[i];
		if (i + 2 < n)
			rte_prefetch0(rte_pktmbuf_mtod(mbufs[i + 2], void *));
		uint32_t total = rte_pktmbuf_pkt_len(m);
		len[i] = total;
		if (likely(m->nb_segs == 1)) {
			uint32_t c = m->data_len < cap ? m->data_len : cap;
			rte_memcpy(dst[i], rte_pktmbuf_mtod(m, void *), c);
		} else {
			uint32_t off = 0;
			for (struct rte_mbuf *s = m; s != NULL && off < cap; s = s->next) {
				uint32_t c = s->data_len;
				if (c > cap - off)
					c = cap - off;
				memcpy(dst[i] + off, rte_pktmbuf_mtod(s, void *), c);
				off += c;
			}
		}
	}
}

uint16_t rvpp_copy_in_alloc(struct rte_mempool *mp, struct rte_mbuf **mbufs, uint16_t n,
			    const uint8_t *const *src, const uint32_t *len)
{
	if (n == 0 || rte_pktmbuf_alloc_bulk(mp, mbufs, n) != 0)
		return 0;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = mbufs[i];
		uint32_t l = len[i];
		uint16_t room = rte_pktmbuf_tailroom(m);
		if (likely(l <= room)) {
			rte_memcpy(rte_pktmbuf_mtod(m, void *), src[i], l);
			m->data_len = (uint16_t)l;
			m->pkt_len = l;
			continue;
		}
		/* Longer than one mbuf: fill this one, then chain more. */
		rte_memcpy(rte_pktmbuf_mtod(m, void *), src[i], room);
		m->data_len = room;
		m->pkt_len = room;
		uint32_t off = room;
		while (off < l) {
			struct rte_mbuf *s = rte_pktmbuf_alloc(mp);
			if (s == NULL || rte_pktmbuf_chain(m, s) != 0) {
				if (s != NULL)
					rte_pktmbuf_free(s);
				rte_pktmbuf_free_bulk(mbufs, n);
				return 0;
			}
			uint16_t r = rte_pktmbuf_tailroom(s);
			uint32_t c = l - off < r ? l - off : r;
			rte_memcpy(rte_pktmbuf_mtod(s, void *), src[i] + off, c);
			s->data_len = (uint16_t)c;
			m->pkt_len += c;
			off += c;
		}
	}
	return n;
}

void rvpp_mempool_set_data_room(struct rte_mempool *mp, uint16_t room)
{
	struct rte_pktmbuf_pool_private *p = rte_mempool_get_priv(mp);
	p->mbuf_data_room_size = room;
}

void rvpp_mbuf_set_buf(struct rte_mbuf *m, void *addr, uint16_t len)
{
	m->buf_addr = addr;
	m->buf_iova = (rte_iova_t)(uintptr_t)addr;
	m->buf_len = len;
	m->data_off = RTE_MIN((uint16_t)RTE_PKTMBUF_HEADROOM, len);
}
