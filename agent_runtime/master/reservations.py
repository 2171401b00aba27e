"""Dynamic reservations: RESERVE/UNRESERVE from operators (``/master/reserve``, v1
RESERVE_RESOURCES) and from frameworks (offer operations), kept in the registry.

A reservation is a step on a resource's reservation stack: RESERVE pushes a DYNAMIC entry for a
role (refining the role below it), UNRESERVE pops the top DYNAMIC entry. The master is the source
of truth: an agent advertises its static resources, and the master lays the registry's dynamic
reservations over them whenever the agent (re-)registers, so reservations survive restarts of
either side.
"""

from __future__ import annotations

import logging

from agent_runtime.errors import BadRequest, Conflict
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.model import Agent, Framework
from agent_runtime.master.offers import Offers
from agent_runtime.resources import DYNAMIC, Resources

log = logging.getLogger(__name__)


def _restack(resources: Resources, keep: int | None) -> Resources:
    """Each resource with its reservation stack cut to ``keep`` entries (None: static part)."""
    out = Resources()
    for (name, stack), value in resources.items():
        if keep is None:
            cut = len(stack)
            while cut and stack[cut - 1].type == DYNAMIC:
                cut -= 1
        else:
            cut = max(len(stack) + keep, 0)
        out = out + Resources({(name, stack[:cut]): value})
    return out


def popped(resources: Resources) -> Resources:
    """What the resources were before their top reservation was pushed."""
    return _restack(resources, -1)


def static_base(resources: Resources) -> Resources:
    """The resources with every dynamic reservation removed."""
    return _restack(resources, None)


def dynamic_part(resources: Resources) -> Resources:
    return resources.filter(lambda key: bool(key[1]) and key[1][-1].type == DYNAMIC)


def _check_reservations(resources: Resources, principal: str | None, *, verb: str) -> None:
    if not resources:
        raise BadRequest(f"Invalid {verb}: no resources given")
    for (name, stack), _ in resources.items():
        if not stack or stack[-1].type != DYNAMIC:
            raise BadRequest(
                f"Invalid {verb}: resource '{name}' must carry a DYNAMIC reservation "
                "(set 'reservations' or the pre-1.4 'role' with 'reservation')"
            )
        reserver = stack[-1].principal
        if verb == "reserve" and principal is not None and reserver and reserver != principal:
            raise BadRequest(
                f"Invalid reserve: the reservation's principal '{reserver}' does not match "
                f"the principal '{principal}' of the request"
            )


class Reservations:
    """Dynamic reservations: kept in the book's registry state (written through the effects),
    applied to agents' totals and to the allocator; rescinds offers to make room."""

    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator,
                 offers: Offers) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.offers = offers

    # Agents ---------------------------------------------------------------------------------
    def apply_registered(self, agent_id: str, advertised: Resources) -> Resources:
        """The agent's total: its advertised resources with the registry's reservations on top."""
        reserved = self.book.registry.reservations.get(agent_id)
        if not reserved:
            return advertised
        base = static_base(reserved)
        plain = static_base(advertised)
        if not plain.contains(base):
            log.warning("agent %s no longer has %s for its dynamic reservations; dropping them",
                        agent_id, base.text())
            self.book.registry.reservations.pop(agent_id, None)
            self.effects.save_registry()
            return advertised
        return plain - base + reserved

    def _update_agent(self, agent: Agent, total: Resources) -> None:
        agent.total = total
        self.allocator.update_agent(agent.id, total)
        reservations = self.book.registry.reservations
        dynamic = dynamic_part(total)
        if dynamic:
            reservations[agent.id] = dynamic
        else:
            reservations.pop(agent.id, None)
        self.effects.save_registry()

    def _free(self, agent: Agent, needed: Resources) -> None:
        """Make ``needed`` unallocated on the agent, rescinding its offers when that helps."""
        used = self.book.used_on(agent.id)
        offered = self.book.offered_on(agent.id)
        if (agent.total - used - offered).contains(needed):
            return
        if not (agent.total - used).contains(needed):
            raise Conflict(
                f"Agent {agent.id} does not have {needed.text()} unallocated "
                f"(total {agent.total.text()}, in use {used.text()})"
            )
        self.offers.rescind_on(agent.id)  # as Mesos: rescind outstanding offers to make room

    def _agent(self, agent_id: str) -> Agent:
        agent = self.book.agents.get(agent_id)
        if agent is None:
            raise BadRequest(f"No agent found with specified ID '{agent_id}'")
        return agent

    def _check_roles(self, resources: Resources) -> None:
        for role in resources.roles():
            self.book.roles.check(role)

    # Operator API ---------------------------------------------------------------------------
    def reserve(self, agent_id: str, resources: Resources, principal: str | None) -> None:
        agent = self._agent(agent_id)
        _check_reservations(resources, principal, verb="reserve")
        self._check_roles(resources)
        source = popped(resources)
        self._free(agent, source)
        self._update_agent(agent, agent.total - source + resources)
        log.info("reserved %s on agent %s", resources.text(), agent_id)
        self.effects.allocate_soon()

    def unreserve(self, agent_id: str, resources: Resources, principal: str | None) -> None:
        agent = self._agent(agent_id)
        _check_reservations(resources, principal, verb="unreserve")
        if not agent.total.contains(resources):
            raise BadRequest(
                f"Invalid unreserve: agent {agent_id} has no reservation {resources.text()}"
            )
        self._free(agent, resources)
        self._update_agent(agent, agent.total - resources + popped(resources))
        log.info("unreserved %s on agent %s", resources.text(), agent_id)
        self.effects.allocate_soon()

    # Offer operations -------------------------------------------------------------------------
    def offer_operation(self, framework: Framework, agent: Agent, role: str, reserve: bool,
                        resources: Resources, pool: Resources) -> Resources:
        """RESERVE or UNRESERVE inside an ACCEPT: transforms part of the offered ``pool``."""
        verb = "reserve" if reserve else "unreserve"
        principal = framework.info.principal or None
        _check_reservations(resources, principal, verb=verb)
        for (name, stack), _ in resources.items():
            owner = stack[-1].role
            if owner != role and not owner.startswith(role + "/"):
                raise BadRequest(
                    f"Invalid {verb}: resource '{name}' is reserved for '{owner}', which is not "
                    f"the offer's allocation role '{role}' or one of its sub-roles"
                )
        source, target = (popped(resources), resources) if reserve else \
            (resources, popped(resources))
        if not pool.contains(source):
            raise BadRequest(f"Invalid {verb}: {source.text()} is not in the offered "
                             f"{pool.text()}")
        self.allocator.update_allocation(framework.id, role, agent.id, source, target)
        self._update_agent(agent, agent.total - source + target)
        return pool - source + target
