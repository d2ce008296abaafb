"""Synthetic workloads: one or more clients, each an arrival process plus a length distribution.

Example:
    >>> import numpy as np
    >>> from llmsched_gym.workloads import ClientSpec, PoissonArrivals, IndependentLengths
    >>> spec = ClientSpec(PoissonArrivals(2.0), IndependentLengths.fixed(512, 20))
    >>> requests = list(spec.generate(np.random.default_rng(0), n=100))
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.workloads._validate import require_int_at_least, require_positive, require_stop
from llmsched_gym.workloads.arrivals import BLOCK, ArrivalProcess
from llmsched_gym.workloads.lengths import LengthDistribution

_Item = tuple[float, int, int, int, int]
"""A generated request before numbering: ``(arrival, client_index, seq, prompt, output)``."""


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One client (tenant) of a synthetic workload.

    Attributes:
        arrivals: The client's arrival process (its rate is the client's rate).
        lengths: The client's ``(prompt, output)`` length distribution.
        client: ``Request.client`` of its requests; ``None`` uses the client's index in the mix.
        slo: SLO class attached to every request, or ``None``.
        weight: Fair-share weight copied into ``Request.weight`` (VTC's weighted variant).
        max_tokens: ``Request.max_tokens`` of every request, or ``None``.
        type_label: ``Request.type_label`` (a WAIT type), or ``None``.
    """

    arrivals: ArrivalProcess
    lengths: LengthDistribution
    client: int | None = None
    slo: SLOClass | None = None
    weight: float = 1.0
    max_tokens: int | None = None
    type_label: int | None = None

    def __post_init__(self) -> None:
        """Validate the fields."""
        if not isinstance(self.arrivals, ArrivalProcess):
            raise ValueError(f"ClientSpec: arrivals={self.arrivals!r} is not an arrival process; use PoissonArrivals")
        if not isinstance(self.lengths, LengthDistribution):
            raise ValueError(f"ClientSpec: lengths={self.lengths!r} is not a length distribution")
        if self.client is not None:
            require_int_at_least("ClientSpec", "client", self.client, 0)
        require_positive("ClientSpec", "weight", self.weight, "weights are relative shares, e.g. 1.0")
        if self.max_tokens is not None:
            require_int_at_least("ClientSpec", "max_tokens", self.max_tokens, 1)
        if self.type_label is not None:
            require_int_at_least("ClientSpec", "type_label", self.type_label, 0)

    def generate(
        self, rng: np.random.Generator, *, n: int | None = None, duration: float | None = None
    ) -> Iterator[Request]:
        """Generate this client's requests alone; same as a one-client :class:`ClientMix`."""
        return ClientMix((self,)).generate(rng, n=n, duration=duration)

    def _items(self, index: int, rng: np.random.Generator) -> Iterator[_Item]:
        """Stream ``(arrival, index, seq, prompt, output)`` without end, drawing lengths in blocks."""
        times = self.arrivals.times(rng)
        seq = itertools.count()
        while True:
            prompts, outputs = self.lengths.draw(BLOCK, rng)
            for prompt, output in zip(prompts.tolist(), outputs.tolist(), strict=True):
                yield next(times), index, next(seq), prompt, output


@dataclass(frozen=True, slots=True)
class ClientMix:
    """Several clients merged into one stream sorted by arrival.

    Each client draws from its own child generator (``rng.spawn``), so adding a client does not change the
    others' requests. Equal arrival times are ordered by client index, then by the client's own order.

    Attributes:
        clients: The clients, in index order.
    """

    clients: tuple[ClientSpec, ...]

    def __post_init__(self) -> None:
        """Validate and freeze the client list."""
        clients = tuple(self.clients)
        if not clients:
            raise ValueError("ClientMix: clients=() is empty; pass at least one ClientSpec")
        for index, spec in enumerate(clients):
            if not isinstance(spec, ClientSpec):
                raise ValueError(f"ClientMix: clients[{index}]={spec!r} is not a ClientSpec")
        object.__setattr__(self, "clients", clients)

    @property
    def mean_rate(self) -> float:
        """Sum of the clients' long-run mean rates (requests/s)."""
        return sum(spec.arrivals.mean_rate for spec in self.clients)

    def generate(
        self, rng: np.random.Generator, *, n: int | None = None, duration: float | None = None
    ) -> Iterator[Request]:
        """Lazily generate the merged stream, numbered 0..N-1 in arrival order.

        Args:
            rng: The only source of randomness.
            n: Stop after this many requests.
            duration: Stop before the first arrival at or after this time (seconds).

        Returns:
            An iterator of requests sorted by arrival.

        Raises:
            ValueError: Neither ``n`` nor ``duration`` is given, or one is invalid.
        """
        require_stop("ClientMix.generate", n, duration)
        children = rng.spawn(len(self.clients))
        items: Iterable[_Item] = heapq.merge(
            *(spec._items(i, child) for i, (spec, child) in enumerate(zip(self.clients, children, strict=True)))
        )
        if duration is not None:
            items = itertools.takewhile(lambda item: item[0] < duration, items)
        if n is not None:
            items = itertools.islice(items, n)
        return self._requests(items)

    def _requests(self, items: Iterable[_Item]) -> Iterator[Request]:
        for new_id, (arrival, index, _, prompt, output) in enumerate(items):
            spec = self.clients[index]
            yield Request(
                id=new_id,
                arrival=arrival,
                prompt_len=prompt,
                output_len=output,
                client=index if spec.client is None else spec.client,
                max_tokens=spec.max_tokens,
                slo=spec.slo,
                weight=spec.weight,
                type_label=spec.type_label,
            )
