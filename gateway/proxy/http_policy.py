"""HTTP (and decrypted HTTPS): decide on the host and the full URL; blocked → the block page.

UT1 and the council's lists hold URL entries (``vk.com/edu``), which only the proxy can match:
DNS sees names only. In transparent mode the client picked the address itself, so for plain
HTTP the Host header is checked against it as the SNI is for HTTPS (see ``destinations.py``);
inside a decrypted connection that check was done at the ClientHello.
"""

from __future__ import annotations

import logging

from mitmproxy import http
from mitmproxy.proxy.mode_specs import TransparentMode

from gateway.proxy.block_page import BlockPage
from gateway.proxy.destinations import AddressBook
from policies.decision import Action, Decision, Reason
from policies.domain import fast_normalise, is_ip_literal
from policies.engine import Engine

log = logging.getLogger(__name__)

DECISION = "kalkan.decision"  # flow.metadata key: the decision every later addon reads
BYPASS = "kalkan.bypass"
URL = "kalkan.url"  # pretty_url, made once per request: mitmproxy builds it anew on each access


class HttpPolicyAddon:
    def __init__(self, engine: Engine, page: BlockPage, addresses: AddressBook | None = None,
                 block_page_ips: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.page = page
        self.addresses = addresses
        self.block_page_ips = block_page_ips

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live or DECISION in flow.metadata:
            return  # an earlier addon has answered (our own pages) or decided
        req = flow.request
        client = flow.client_conn.peername[0]
        host = req.pretty_host
        url = flow.metadata[URL] = req.pretty_url
        decision = self.engine.decide(client, host, url)
        if is_ip_literal(host) and not decision.blocked and self._is_student(decision):
            flow.metadata[BYPASS] = True
            decision = decision._replace(action=Action.BLOCK, reason=Reason.BYPASS_ATTEMPT,
                                         detail=f"HTTP to the address {host} without a name")
        elif not decision.blocked and self._transparent_plain(flow):
            decision = await self._check_destination(flow, decision, host)
        flow.metadata[DECISION] = decision
        if decision.blocked:
            flow.response = self.page.response(decision, req, url=url)

    async def _check_destination(self, flow: http.HTTPFlow, decision: Decision,
                                 host: str) -> Decision:
        destination = flow.request.host  # transparent mode: the address the client chose
        if not is_ip_literal(destination) or is_ip_literal(host):
            return decision
        if destination in self.block_page_ips:
            flow.request.host = host  # a stale block answer for a name allowed now: go by name
            return decision
        if self.addresses is None:
            return decision
        if await self.addresses.belongs(fast_normalise(host), destination) is not False:
            return decision
        flow.metadata[BYPASS] = True
        why = f"the Host {host} does not belong to the address {destination}"
        if not self._is_student(decision):
            log.info("client %s: %s (allowed: not a student)", decision.client, why)
            return decision
        return decision._replace(action=Action.BLOCK, reason=Reason.BYPASS_ATTEMPT, detail=why)

    @staticmethod
    def _transparent_plain(flow: http.HTTPFlow) -> bool:
        return (isinstance(flow.client_conn.proxy_mode, TransparentMode)
                and not flow.client_conn.tls_established)

    def _is_student(self, decision: Decision) -> bool:
        group = self.engine.snapshot.groups.get(decision.group or "")
        return group is None or group.is_student
