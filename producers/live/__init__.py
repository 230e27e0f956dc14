"""Live Binance source: combined WebSocket streams -> the raw topic, with REST gap-fill.

Modules: `frames` (stream names, frame classification), `sequencer` (ids in order, once),
`producer` (connections, rotation, gap-fill), `recovery` (last ids from the topic), `metrics`.
The REST client and the rate limits are the core's (`tickcast.sources`): the backfill uses them too.

Guarantee: per (symbol, kind) the topic gets trade ids in strictly increasing, contiguous order,
each id once. Live frames pass through a per-key sequencer: the next id is published at once; an
id past a gap waits (briefly, since during a rotation the other connection may still deliver the
missing ones) and then the gap is fetched over REST (`tickcast-source: gapfill`) before the
waiting live events are drained. After a reconnect, keys that stay quiet are swept over REST; on
a restart the last published ids are read back from the topic itself (a pod has no local disk).

Binance's rules (spot WebSocket streams and REST limits), each enforced by a small pure class (`tickcast.sources.limits`)
so the unit tests can check it without a network:
  * at most 1,024 streams per connection (more connections beyond that);
  * at most 5 incoming messages per second per connection (pong and SUBSCRIBE count): `Spacing`;
  * at most 300 connection attempts per 5 minutes per IP: `SlidingWindow`;
  * a connection is cut after 24 h: it is rotated before `TICKCAST_BINANCE_WS_LIFETIME_SECONDS`,
    and on a `serverShutdown` event, by opening the next one first (overlap, then switch);
  * reconnects back off exponentially with jitter: `Backoff`;
  * REST weight per minute (X-MBX-USED-WEIGHT-1M), 429/418 with Retry-After: `WeightBudget`.
"""
from __future__ import annotations

from producers.live.producer import LIVE_PRODUCER_CONFIG, LiveOptions, LiveProducer

__all__ = ["LIVE_PRODUCER_CONFIG", "LiveOptions", "LiveProducer"]
