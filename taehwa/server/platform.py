"""The composition root: one object that opens the stores once, builds every service in the order they need each
other (each handed the collaborators it uses, by name: none receives this object), and hands the same services to
the HTTP API, the CLI and the web UI, so none of them holds logic of its own.

The stores, tenancy and the twin are opened at once; every other service is built (and its module imported) the first
time it is asked for by a one-off reader (a CLI listing), which so imports only what it uses. The server, its
followers and any writer build every service as they open: a fault in one shows at once, and the analytics and live
scoring hear every write."""

from __future__ import annotations

import json
import os
import secrets
from functools import cached_property
from typing import TYPE_CHECKING

from taehwa.core.paths import dev_token_path, server_info_path
from taehwa.core.settings import Settings
from taehwa.historian.store import Historian
from taehwa.migrate import make_engine
from taehwa.sharing.grants import SharingService
from taehwa.tenancy.access import Principal
from taehwa.tenancy.audit import open_audit
from taehwa.tenancy.files import FileRoots
from taehwa.tenancy.identity import IdentityService
from taehwa.tenancy.tenants import TenantService
from taehwa.twin.model import Plant
from taehwa.twin.service import TwinService

if TYPE_CHECKING:  # the services built on first use are imported there
    from taehwa.academy.service import AcademyService
    from taehwa.analytics.service import AnalyticsService
    from taehwa.city.compute import ComputeLedger, QuotaGuard
    from taehwa.city.policy import PolicyBook
    from taehwa.city.service import CityService
    from taehwa.connectors.service import ConnectorService
    from taehwa.flight import FlightService
    from taehwa.lab.labels import LabelService
    from taehwa.lab.service import LabService
    from taehwa.live.service import LiveService
    from taehwa.server.overview import Overview
    from taehwa.sqlport.server import SqlPort


def check_plant(plant: Plant) -> list[tuple[str, str]]:
    """The analytics' check of a plant's calculated signals and event templates, imported when a plant is checked."""
    from taehwa.analytics.program import check_plant as check

    return check(plant)


BOOTSTRAP_ADMIN = "admin"  # the caller the bootstrap token (TAEHWA_API_TOKEN or the dev token) stands for


class Platform:
    """Settings plus the services built from them."""

    def __init__(
        self, settings: Settings, *, readonly: bool = False, background: bool = True, follow: bool = False
    ) -> None:
        """`readonly`: a reader beside the server (the CLI); `follow`: a reader that keeps up with the server's
        writes (an API worker of `taehwa serve --workers N`)."""
        self.settings = settings
        readonly = readonly or follow
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # other local users see nothing
        self.engine = make_engine(settings.metadata_url)  # metadata, audit and tenancy first: the historian uses them
        try:
            self.audit = open_audit(self.engine, settings)
            self.tenants = TenantService(self.engine, self.audit)
            self.historian = Historian(
                settings,
                self.engine,
                audit=self.audit,
                tenants=self.tenants,
                readonly=readonly,
                background=background,
                follow=follow,
            )
        except BaseException:  # e.g. a second writer refused: nothing stays open
            self.engine.dispose()
            raise
        self.identity = IdentityService(self.engine, self.audit)
        self.sharing = SharingService(self.engine, self.historian, self.tenants, self.audit)
        self.files = FileRoots(settings)
        self.twin = TwinService(
            settings, self.historian, engine=self.engine, tenants=self.tenants, audit=self.audit, checks=(check_plant,)
        )
        if follow or not readonly:  # the server and its followers fold every point in; a one-off reader (a CLI
            self.twin.preload()  # command beside the server) loads a tenant's plant when it asks for it, current then
        self._readonly = readonly
        if background or not readonly:  # the server, its followers and any writer build every service now (a fault
            for name, attr in vars(Platform).items():  # in one shows as it starts; the analytics and live scoring
                if isinstance(attr, cached_property):  # hear every write); a one-off reader (a CLI listing) builds
                    getattr(self, name)  # only what it asks for, each service its collaborators first
        if background and not readonly:
            self.twin.start()
            self.analytics.start()
            self.academy.resume()
        self.api_token = self._token()

    @cached_property
    def analytics(self) -> AnalyticsService:
        """Calculated signals, event frames and data-quality checks (computed live only by a writer)."""
        from taehwa.analytics.service import AnalyticsService

        return AnalyticsService(
            engine=self.engine,
            historian=self.historian,
            twin=self.twin,
            tenants=self.tenants,
            audit=self.audit,
            live=not self._readonly,
        )

    @cached_property
    def labels(self) -> LabelService:
        """Labelled periods; the analytics hear of each change (events taken as labels)."""
        from taehwa.lab.labels import LabelService

        return LabelService(self.engine, self.tenants, self.audit, listeners=(self.analytics.sources.labels_changed,))

    @cached_property
    def city_policy(self) -> PolicyBook:
        """The city's policies, the quotas the lab honours among them."""
        from taehwa.city.policy import PolicyBook
        from taehwa.city.service import CITY_TENANT

        return PolicyBook(self.engine, self.tenants, self.audit, CITY_TENANT)

    @cached_property
    def compute(self) -> ComputeLedger:
        """What each tenant's training has used of the shared machines."""
        from taehwa.city.compute import ComputeLedger

        return ComputeLedger(self.engine, self.settings.data_dir / "lab")

    @cached_property
    def quotas(self) -> QuotaGuard:
        """The check the lab makes before a run: the tenant's quota against its use."""
        from taehwa.city.compute import QuotaGuard

        return QuotaGuard(self.compute, self.city_policy)

    @cached_property
    def lab(self) -> LabService:
        """Datasets, training, validation and the model registry."""
        from taehwa.lab.service import LabService

        return LabService(
            self.settings,
            engine=self.engine,
            historian=self.historian,
            tenants=self.tenants,
            audit=self.audit,
            twin=self.twin,
            labels=self.labels,
            files=self.files,
            quota=self.quotas.check,
            events=self.analytics.events,
        )

    @cached_property
    def connectors(self) -> ConnectorService:
        """The collectors that feed the historian."""
        from taehwa.connectors.service import ConnectorService

        return ConnectorService(
            self.engine,
            self.tenants,
            self.audit,
            self.historian,
            self.settings.data_dir / "connectors",
            files=self.files,
        )

    @cached_property
    def live(self) -> LiveService:
        """Deployed models scoring live data, rules and alerts."""
        from taehwa.live.service import LiveService

        return LiveService(
            engine=self.engine,
            historian=self.historian,
            tenants=self.tenants,
            audit=self.audit,
            twin=self.twin,
            lab=self.lab,
            alert_follower=self.analytics.sources,
        )

    @cached_property
    def overview(self) -> Overview:
        """The control tower's figures across tenants."""
        from taehwa.server.overview import Overview

        return Overview(
            historian=self.historian, tenants=self.tenants, twin=self.twin, alerts=self.live.alerts, lab=self.lab
        )

    @cached_property
    def academy(self) -> AcademyService:
        """Challenges, submissions scored in a sandbox, boards."""
        from taehwa.academy.service import AcademyService

        return AcademyService(
            self.settings,
            engine=self.engine,
            tenants=self.tenants,
            audit=self.audit,
            sharing=self.sharing,
            identity=self.identity,
            data=self.lab,
        )

    @cached_property
    def city(self) -> CityService:
        """The city's twin and the figures released from the companies' data."""
        from taehwa.city.consents import ConsentBook
        from taehwa.city.figures import FIGURES
        from taehwa.city.rates import SiteRates
        from taehwa.city.release import ReleaseGate
        from taehwa.city.service import CITY_TENANT, CityService

        return CityService(
            city=CITY_TENANT,
            engine=self.engine,
            tenants=self.tenants,
            twin=self.twin,
            consents=ConsentBook(self.engine, self.tenants, self.audit, self.twin, tuple(FIGURES)),
            policy=self.city_policy,
            gate=ReleaseGate(self.engine, self.audit, CITY_TENANT),
            alerts=self.live.alerts,
            deployments=self.live.deployments,
            lab=self.lab,
            rates=SiteRates(self.historian, self.twin.live),
            ledger=self.compute,
            quotas=self.quotas,
        )

    def _built(self, name: str) -> bool:
        """Whether a service built on first use has been (close leaves alone what was never opened)."""
        return name in self.__dict__

    def _token(self) -> str:
        """The API bearer token: from the settings, else a development token kept in the data directory."""
        if self.settings.api_token is not None:
            return self.settings.api_token.get_secret_value()
        path = dev_token_path(self.settings)
        if path.exists():
            return path.read_text().strip()
        token = "dev-" + secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        return token

    def authenticate(self, token: str, source: str | None = None) -> Principal:
        """The caller a bearer token stands for: the bootstrap admin token, or a user's API token."""
        if secrets.compare_digest(token.encode(), self.api_token.encode()):
            return Principal(BOOTSTRAP_ADMIN, platform_admin=True, source=source)
        return self.identity.authenticate(token, source=source)

    def sql_port(self) -> SqlPort:
        """The SQL port over this platform's services (`taehwa serve --sql-port`); started by the caller."""
        from taehwa.sqlport.server import SqlPort
        from taehwa.sqlport.session import Limits

        s = self.settings
        return SqlPort(
            historian=self.historian,
            twin=self.twin,
            alerts=self.live.alerts,
            tenants=self.tenants,
            identity=self.identity,
            audit=self.audit,
            authenticate=self.authenticate,
            limits=Limits(max_rows=s.max_query_points, threads=s.duckdb_threads),
            tls_cert=s.tls_cert if s.tls_key else None,
            tls_key=s.tls_key if s.tls_cert else None,
        )

    def flight(self, host: str, port: int) -> FlightService:
        """The Arrow Flight endpoint over this platform's historian (`taehwa serve --flight-port`)."""
        from taehwa.flight import FlightService

        s = self.settings
        tls = (s.tls_cert.read_bytes(), s.tls_key.read_bytes()) if s.tls_cert and s.tls_key else None
        scheme = "grpc+tls" if tls else "grpc+tcp"
        return FlightService(
            f"{scheme}://{host}:{port}",
            historian=self.historian,
            tenants=self.tenants,
            authenticate=self.authenticate,
            max_put_bytes=s.max_body_bytes,
            tls=tls,
        )

    def announce(self, url: str) -> None:
        """Tell local CLI processes where the running server listens (they send writes there), and, as one of
        several writers by tenant, the other nodes (its leases name where its tenants are served)."""
        server_info_path(self.settings).write_text(json.dumps({"url": url, "pid": os.getpid()}))
        if self.historian.leases.tenants is not None:
            self.historian.leases.set_url(self.settings.public_url or url)

    def close(self) -> None:
        """Flush and release everything."""
        server_info_path(self.settings).unlink(missing_ok=True)
        if self._built("connectors"):
            self.connectors.close()
        if self._built("academy"):
            self.academy.close_service()
        if self._built("live"):
            self.live.close()
        if self._built("analytics"):
            self.analytics.close()
        self.twin.close()
        self.historian.close()
