"""The demo project of DESIGN §7 -- a 100 kg LEO smallsat -- as plain data.

No database here: a loader inserts these records (``threadline demo``), tests and
docs read them. Everything references everything else by natural key: component
``tag``, parameter ``symbol``, requirement ``key``, component type ``code``.
Enumerated strings follow the domain models (priorities ``low..critical``,
statuses ``draft..obsolete``, link kinds ``satisfied_by``...).

Derived parameters carry a formula and no value; :func:`demo_values` computes
every value with the engine, so the loader can store consistent numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.parameters.graph import ParameterGraph

# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PortSpec:
    name: str
    kind: str  # power, data, fluid, mechanical, thermal, signal, rf, other
    direction: str  # in, out, inout

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "direction": self.direction}


@dataclass(frozen=True)
class ComponentTypeSpec:
    code: str
    name: str
    description: str
    property_schema: dict[str, Any]  # JSON Schema (draft 2020-12) for `properties`
    ports: tuple[PortSpec, ...] = ()


@dataclass(frozen=True)
class ComponentSpec:
    tag: str
    name: str
    type_code: str
    parent_tag: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    graphics: dict[str, float] = field(default_factory=dict)  # x, y, rotation
    description: str = ""


@dataclass(frozen=True)
class ConnectorSpec:
    source_tag: str
    source_port: str
    target_tag: str
    target_port: str
    kind: str
    name: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParameterSpec:
    symbol: str
    name: str
    unit: str
    component_tag: str | None  # None: a project-level parameter
    value: float | None = None  # None for derived parameters
    formula: str | None = None
    uncertainty: float | None = None  # +/- in `unit`
    description: str = ""


@dataclass(frozen=True)
class RuleSpec:
    symbol: str
    operator: str  # <=, <, >=, >, ==, between
    threshold: float
    unit: str
    threshold_high: float | None = None  # only for "between"


@dataclass(frozen=True)
class RequirementSpec:
    key: str
    title: str
    text: str
    priority: str  # low, medium, high, critical
    status: str  # draft, proposed, approved, rejected, obsolete
    verification_method: str  # analysis, inspection, test, review, rule
    parent_key: str | None = None
    rule: RuleSpec | None = None


@dataclass(frozen=True)
class TraceLinkSpec:
    """``requirement --kind--> target``; target_type is component, parameter or requirement."""

    requirement_key: str
    kind: str  # satisfied_by, verified_by, derived_from, refines, allocated_to
    target_type: str
    target: str  # component tag, parameter symbol or requirement key


@dataclass(frozen=True)
class TradeVariableSpec:
    symbol: str
    min: float
    max: float
    unit: str


@dataclass(frozen=True)
class TradeStudySpec:
    name: str
    description: str
    method: str  # GRID, LATIN_HYPERCUBE, SOBOL, RANDOM, LIST
    sample_count: int
    seed: int
    variables: tuple[TradeVariableSpec, ...]
    outputs: tuple[str, ...]
    objectives: tuple[tuple[str, str], ...]  # (symbol, "minimize" | "maximize")
    constraints: tuple[str, ...]  # requirement keys a feasible scenario must pass

    def definition(self) -> dict[str, Any]:
        """The JSON document stored in ``trade_studies.definition``."""
        return {
            "variables": [
                {"symbol": v.symbol, "min": v.min, "max": v.max, "unit": v.unit}
                for v in self.variables
            ],
            "outputs": list(self.outputs),
            "objectives": [{"symbol": s, "sense": sense} for s, sense in self.objectives],
            "constraints": list(self.constraints),
        }


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str
    display_name: str
    organization: str


@dataclass(frozen=True)
class DemoModel:
    project_name: str
    project_description: str
    user: DemoUser
    component_types: tuple[ComponentTypeSpec, ...]
    components: tuple[ComponentSpec, ...]
    connectors: tuple[ConnectorSpec, ...]
    parameters: tuple[ParameterSpec, ...]
    requirements: tuple[RequirementSpec, ...]
    trace_links: tuple[TraceLinkSpec, ...]
    trade_studies: tuple[TradeStudySpec, ...]

    def component_type(self, code: str) -> ComponentTypeSpec:
        return next(t for t in self.component_types if t.code == code)

    def component(self, tag: str) -> ComponentSpec:
        return next(c for c in self.components if c.tag == tag)

    def parameter(self, symbol: str) -> ParameterSpec:
        return next(p for p in self.parameters if p.symbol == symbol)

    def requirement(self, key: str) -> RequirementSpec:
        return next(r for r in self.requirements if r.key == key)

    def parameter_graph(self, overrides: dict[str, float] | None = None) -> ParameterGraph:
        """The engine's view of the parameters; ``overrides`` replace input values."""
        values = {p.symbol: p.value for p in self.parameters if p.formula is None}
        values.update(overrides or {})
        return ParameterGraph(
            {p.symbol: p.formula for p in self.parameters},
            {p.symbol: p.unit for p in self.parameters},
            values,
        )


# --------------------------------------------------------------------------- types


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_DISCIPLINES = [
    "structure",
    "power",
    "adcs",
    "cdh",
    "comms",
    "thermal",
    "harness",
    "payload",
    "propulsion",
]
_STR = {"type": "string", "minLength": 1, "maxLength": 200}
_POS = {"type": "number", "exclusiveMinimum": 0}
_COUNT = {"type": "integer", "minimum": 1}
_BAND = {"type": "string", "enum": ["UHF", "S", "X", "Ku", "Ka"]}
_PWR_IN = PortSpec("pwr_in", "power", "in")
_DATA = PortSpec("data", "data", "inout")
_MOUNT = PortSpec("mount", "mechanical", "inout")

COMPONENT_TYPES: tuple[ComponentTypeSpec, ...] = (
    ComponentTypeSpec(
        "SPACECRAFT",
        "Spacecraft",
        "The system root.",
        _obj({"mission": _STR, "orbit": _STR, "design_life_years": _POS}, ("mission",)),
    ),
    ComponentTypeSpec(
        "SUBSYSTEM",
        "Subsystem",
        "A discipline-level grouping (power, propulsion...) that owns budget items.",
        _obj(
            {
                "discipline": {"type": "string", "enum": _DISCIPLINES},
                "lead": _STR,
            },
            ("discipline",),
        ),
    ),
    ComponentTypeSpec(
        "STRUCTURE",
        "Structure",
        "Primary or secondary structure.",
        _obj({"material": _STR, "architecture": _STR}, ("material",)),
        (_MOUNT,),
    ),
    ComponentTypeSpec(
        "BATTERY",
        "Battery",
        "Secondary battery pack.",
        _obj(
            {
                "chemistry": {"type": "string", "enum": ["Li-ion", "LiFePO4", "NiH2"]},
                "cells_series": _COUNT,
                "cells_parallel": _COUNT,
                "part_number": _STR,
            },
            ("chemistry", "cells_series", "cells_parallel"),
        ),
        (PortSpec("pwr", "power", "inout"), _MOUNT),
    ),
    ComponentTypeSpec(
        "SOLAR_ARRAY",
        "Solar array",
        "Photovoltaic array (deployable or body-mounted).",
        _obj(
            {
                "cell_type": {"type": "string", "enum": ["GaAs triple junction", "Si"]},
                "deployable": {"type": "boolean"},
                "panels": _COUNT,
            },
            ("cell_type", "deployable"),
        ),
        (PortSpec("pwr_out", "power", "out"), _MOUNT),
    ),
    ComponentTypeSpec(
        "PCDU",
        "Power conditioning and distribution unit",
        "Array regulation, battery charge control and the distribution bus.",
        _obj({"bus_voltage_v": _POS, "mppt": {"type": "boolean"}}, ("bus_voltage_v",)),
        (
            PortSpec("sa_in", "power", "in"),
            PortSpec("bat", "power", "inout"),
            PortSpec("pwr_bus", "power", "out"),
            _DATA,
        ),
    ),
    ComponentTypeSpec(
        "OBC",
        "On-board computer",
        "Command and data handling computer.",
        _obj(
            {
                "processor": _STR,
                "memory_mb": _COUNT,
                "radiation_tolerance": {
                    "type": "string",
                    "enum": ["COTS", "rad-tolerant", "rad-hard"],
                },
            },
            ("processor",),
        ),
        (_PWR_IN, _DATA),
    ),
    ComponentTypeSpec(
        "TRANSCEIVER",
        "Transceiver",
        "RF transmitter/receiver.",
        _obj({"band": _BAND, "modulation": _STR, "coding": _STR}, ("band",)),
        (_PWR_IN, _DATA, PortSpec("rf_out", "rf", "out")),
    ),
    ComponentTypeSpec(
        "ANTENNA",
        "Antenna",
        "RF antenna.",
        _obj(
            {
                "band": _BAND,
                "antenna_type": {
                    "type": "string",
                    "enum": ["patch", "patch array", "helix", "horn", "dipole", "reflector"],
                },
                "polarization": {"type": "string", "enum": ["RHCP", "LHCP", "linear"]},
            },
            ("band", "antenna_type"),
        ),
        (PortSpec("rf_in", "rf", "in"),),
    ),
    ComponentTypeSpec(
        "THRUSTER",
        "Thruster",
        "Chemical or electric thruster.",
        _obj({"propellant": _STR, "thrust_n": _POS}, ("propellant",)),
        (PortSpec("fluid_in", "fluid", "in"), _PWR_IN, PortSpec("cmd", "data", "in")),
    ),
    ComponentTypeSpec(
        "TANK",
        "Propellant tank",
        "Propellant storage.",
        _obj({"propellant": _STR, "volume_l": _POS, "pressurant": _STR}, ("propellant",)),
        (PortSpec("fluid_out", "fluid", "out"), PortSpec("fill", "fluid", "in")),
    ),
    ComponentTypeSpec(
        "GENERIC",
        "Generic unit",
        "Anything without a dedicated type; free-form properties.",
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
        (_PWR_IN, _DATA),
    ),
)

# --------------------------------------------------------------------------- components


def _gfx(x: float, y: float, rotation: float = 0.0) -> dict[str, float]:
    return {"x": x, "y": y, "rotation": rotation}


def _subsystem(tag: str, name: str, discipline: str, x: float, lead: str) -> ComponentSpec:
    return ComponentSpec(
        tag, name, "SUBSYSTEM", "SAT", {"discipline": discipline, "lead": lead}, _gfx(x, 160)
    )


COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec(
        "SAT",
        "Acme LEO-1 smallsat",
        "SPACECRAFT",
        None,
        {"mission": "Earth observation", "orbit": "550 km SSO", "design_life_years": 5},
        _gfx(640, 20),
        "100 kg class Earth-observation smallsat (the Threadline demo).",
    ),
    _subsystem("STR", "Structure", "structure", 0, "M. Okafor"),
    _subsystem("EPS", "Electrical power (EPS)", "power", 160, "L. Brandt"),
    _subsystem("ADCS", "Attitude determination and control", "adcs", 320, "S. Iyer"),
    _subsystem("CDH", "On-board computer / C&DH", "cdh", 480, "J. Moreau"),
    _subsystem("COM", "Communications", "comms", 640, "A. Kowalski"),
    _subsystem("THM", "Thermal control", "thermal", 800, "R. Haddad"),
    _subsystem("HAR", "Harness", "harness", 960, "L. Brandt"),
    _subsystem("PL", "Payload", "payload", 1120, "E. Lindqvist"),
    _subsystem("PROP", "Propulsion", "propulsion", 1280, "D. Nakamura"),
    ComponentSpec(
        "STR-PRI-01",
        "Primary structure",
        "STRUCTURE",
        "STR",
        {"material": "Al 7075 honeycomb", "architecture": "panel"},
        _gfx(0, 300),
    ),
    ComponentSpec(
        "EPS-SA-01",
        "Deployable solar array",
        "SOLAR_ARRAY",
        "EPS",
        {"cell_type": "GaAs triple junction", "deployable": True, "panels": 2},
        _gfx(100, 300, 90),
    ),
    ComponentSpec(
        "EPS-BAT-01",
        "Li-ion battery pack",
        "BATTERY",
        "EPS",
        {"chemistry": "Li-ion", "cells_series": 4, "cells_parallel": 4, "part_number": "BP-4S4P"},
        _gfx(160, 300),
    ),
    ComponentSpec(
        "EPS-PCDU-01",
        "PCDU",
        "PCDU",
        "EPS",
        {"bus_voltage_v": 28, "mppt": True},
        _gfx(220, 300),
    ),
    ComponentSpec(
        "ADCS-ST-01",
        "Star tracker",
        "GENERIC",
        "ADCS",
        {"accuracy_arcsec": 10, "vendor": "Acme Optics"},
        _gfx(300, 300),
    ),
    ComponentSpec(
        "ADCS-RW-01",
        "Reaction wheel assembly",
        "GENERIC",
        "ADCS",
        {"wheels": 4, "momentum_nms": 0.1},
        _gfx(360, 300),
    ),
    ComponentSpec(
        "CDH-OBC-01",
        "On-board computer",
        "OBC",
        "CDH",
        {"processor": "ARM Cortex-R5", "memory_mb": 2048, "radiation_tolerance": "rad-tolerant"},
        _gfx(480, 300),
    ),
    ComponentSpec(
        "COM-XTX-01",
        "X-band transmitter",
        "TRANSCEIVER",
        "COM",
        {"band": "X", "modulation": "QPSK", "coding": "DVB-S2 LDPC 3/4"},
        _gfx(610, 300),
    ),
    ComponentSpec(
        "COM-XANT-01",
        "X-band patch array antenna",
        "ANTENNA",
        "COM",
        {"band": "X", "antenna_type": "patch array", "polarization": "RHCP"},
        _gfx(670, 300),
    ),
    ComponentSpec(
        "PL-CAM-01",
        "Multispectral imager",
        "GENERIC",
        "PL",
        {"gsd_m": 3.0, "bands": 6, "swath_km": 30},
        _gfx(1120, 300),
    ),
    ComponentSpec(
        "PROP-THR-01",
        "1 N monopropellant thruster",
        "THRUSTER",
        "PROP",
        {"propellant": "hydrazine", "thrust_n": 1.0},
        _gfx(1250, 300),
    ),
    ComponentSpec(
        "PROP-TNK-01",
        "Propellant tank",
        "TANK",
        "PROP",
        {"propellant": "hydrazine", "volume_l": 12.0, "pressurant": "N2 (blow-down)"},
        _gfx(1310, 300),
    ),
)


def _c(source: str, kind: str, target: str, name: str = "") -> ConnectorSpec:
    (src_tag, src_port), (dst_tag, dst_port) = source.split("."), target.split(".")
    return ConnectorSpec(src_tag, src_port, dst_tag, dst_port, kind, name)


CONNECTORS: tuple[ConnectorSpec, ...] = (
    _c("EPS-SA-01.pwr_out", "power", "EPS-PCDU-01.sa_in", "array power"),
    _c("EPS-BAT-01.pwr", "power", "EPS-PCDU-01.bat", "battery"),
    _c("EPS-PCDU-01.pwr_bus", "power", "CDH-OBC-01.pwr_in", "28 V to OBC"),
    _c("EPS-PCDU-01.pwr_bus", "power", "COM-XTX-01.pwr_in", "28 V to X-band"),
    _c("EPS-PCDU-01.pwr_bus", "power", "ADCS-ST-01.pwr_in", "28 V to star tracker"),
    _c("EPS-PCDU-01.pwr_bus", "power", "PL-CAM-01.pwr_in", "28 V to imager"),
    _c("EPS-PCDU-01.pwr_bus", "power", "PROP-THR-01.pwr_in", "28 V to thruster valve"),
    _c("CDH-OBC-01.data", "data", "EPS-PCDU-01.data", "housekeeping bus"),
    _c("CDH-OBC-01.data", "data", "COM-XTX-01.data", "downlink data"),
    _c("CDH-OBC-01.data", "data", "ADCS-ST-01.data", "attitude"),
    _c("CDH-OBC-01.data", "data", "PL-CAM-01.data", "image data"),
    _c("CDH-OBC-01.data", "data", "PROP-THR-01.cmd", "valve command"),
    _c("COM-XTX-01.rf_out", "rf", "COM-XANT-01.rf_in", "X-band RF"),
    _c("PROP-TNK-01.fluid_out", "fluid", "PROP-THR-01.fluid_in", "propellant feed"),
)

# --------------------------------------------------------------------------- parameters

# (tag, item, mass kg, maturity margin, uncertainty kg) -- DESIGN §7 mass budget.
_MASS_ITEMS = (
    ("STR", "structure", 18.0, 0.10, 1.5),
    ("EPS", "eps", 12.0, 0.05, 0.8),
    ("EPS-SA-01", "solar_array", 8.0, 0.10, 0.6),
    ("ADCS", "adcs", 9.0, 0.05, 0.5),
    ("CDH", "obc", 2.0, 0.05, 0.1),
    ("COM", "comms", 4.0, 0.05, 0.3),
    ("THM", "thermal", 3.0, 0.20, 0.5),
    ("HAR", "harness", 5.0, 0.20, 1.0),
    ("PL", "payload", 20.0, 0.20, 2.0),
    ("PROP", "propulsion", 6.0, 0.10, 0.5),
)
_MASS_NAMES = {
    "structure": "Structure",
    "eps": "Power electronics + battery",
    "solar_array": "Solar array",
    "adcs": "Attitude control",
    "obc": "On-board computer",
    "comms": "Communications",
    "thermal": "Thermal control",
    "harness": "Harness",
    "payload": "Payload",
    "propulsion": "Propulsion (dry)",
}


def _mass_parameters() -> list[ParameterSpec]:
    out: list[ParameterSpec] = []
    for tag, item, mass, margin, uncertainty in _MASS_ITEMS:
        label = _MASS_NAMES[item]
        out.append(
            ParameterSpec(
                symbol=f"m_{item}",
                name=f"{label} mass",
                unit="kg",
                component_tag=tag,
                value=mass,
                uncertainty=uncertainty,
                description=f"Best-estimate mass: {label.lower()}.",
            )
        )
        out.append(
            ParameterSpec(
                symbol=f"margin_{item}",
                name=f"{label} maturity margin",
                unit="",
                component_tag=tag,
                value=margin,
                description="Mass growth allowance as a fraction (0.1 = 10 %).",
            )
        )
    return out


_M_DRY = (
    "("
    + " + ".join(f"m_{item}*(1 + margin_{item})" for _, item, *_ in _MASS_ITEMS)
    + ")*(1 + system_margin)"
)


def _p(
    symbol: str,
    name: str,
    unit: str,
    tag: str | None,
    value: float | str,
    description: str = "",
    uncertainty: float | None = None,
) -> ParameterSpec:
    """A parameter: a float ``value`` is an input, a string is a formula."""
    if isinstance(value, str):
        return ParameterSpec(symbol, name, unit, tag, None, value, None, description)
    return ParameterSpec(symbol, name, unit, tag, float(value), None, uncertainty, description)


PARAMETERS: tuple[ParameterSpec, ...] = (
    *_mass_parameters(),
    _p("system_margin", "System margin", "", "SAT", 0.2, "System-level mass margin (0.2 = 20 %)."),
    _p("m_dry", "Dry mass", "kg", "SAT", _M_DRY, "Sum of margined items times system margin."),
    # Propulsion
    _p("dv", "Delta-v budget", "m/s", "PROP", 148.5, "Orbit raising, maintenance, disposal."),
    _p("isp", "Specific impulse", "s", "PROP", 220.0, "Monopropellant hydrazine."),
    _p("m_prop", "Propellant mass", "kg", "PROP", "m_dry*(exp(dv/(isp*g0)) - 1)", "Rocket eq."),
    _p("m_wet", "Wet (launch) mass", "kg", "SAT", "m_dry + m_prop"),
    # Orbit
    _p("R_E", "Earth mean radius", "km", None, 6371.0),
    _p("mu", "Earth gravitational parameter", "km^3/s^2", None, 398600.4418),
    _p("h", "Orbit altitude", "km", "SAT", 550.0, "Circular orbit altitude."),
    _p("a", "Semi-major axis", "km", "SAT", "R_E + h"),
    _p("T_orbit", "Orbit period", "min", "SAT", "2*pi*sqrt(a**3/mu)"),
    _p("f_eclipse", "Eclipse fraction", "%", "SAT", "asin(R_E/a)/pi", "Worst case, beta = 0."),
    _p("t_eclipse", "Eclipse duration", "min", "SAT", "f_eclipse*T_orbit"),
    # Power
    _p("S_solar", "Solar constant", "W/m^2", None, 1361.0),
    _p("eta_cell", "Cell efficiency", "", "EPS-SA-01", 0.28, "BOL, triple junction GaAs."),
    _p("A_array", "Array area", "m^2", "EPS-SA-01", 0.6, uncertainty=0.02),
    _p("packing_factor", "Packing factor", "", "EPS-SA-01", 0.85),
    _p("degradation", "End-of-life degradation", "%", "EPS-SA-01", 10.0, "5-year loss."),
    _p("theta_sun", "Sun incidence angle", "deg", "EPS-SA-01", 20.0),
    _p(
        "P_array",
        "Array power (sunlit, EOL)",
        "W",
        "EPS-SA-01",
        "S_solar*eta_cell*A_array*packing_factor*(1 - degradation)*cos(theta_sun)",
    ),
    _p("P_load", "Orbit-average load", "W", "EPS", 75.0, "All units, nominal mode.", 5.0),
    _p("P_orbit_avg", "Orbit-average generated power", "W", "EPS", "P_array*(1 - f_eclipse)"),
    _p("power_margin", "Power margin", "%", "EPS", "P_orbit_avg/P_load - 1"),
    _p("C_bat", "Battery capacity", "W*h", "EPS-BAT-01", 160.0),
    _p("E_eclipse", "Eclipse energy", "W*h", "EPS-BAT-01", "P_load*t_eclipse"),
    _p("dod", "Battery depth of discharge", "%", "EPS-BAT-01", "E_eclipse/C_bat"),
    # Thermal (offset units as inputs: formulas see kelvin, results are differences in K)
    _p("T_bat_pred", "Battery max predicted temperature", "degC", "THM", 32.0),
    _p("T_bat_qual", "Battery qualification temperature", "degC", "THM", 45.0),
    _p("T_margin_bat", "Battery thermal margin", "K", "THM", "T_bat_qual - T_bat_pred"),
    # X-band downlink budget (dB values add: see app.parameters.units)
    _p("P_tx", "Transmit power", "dBW", "COM-XTX-01", 3.0, "2 W RF."),
    _p("L_line", "Line and connector losses", "dB", "COM-XTX-01", 1.0),
    _p("G_tx", "Transmit antenna gain", "dBi", "COM-XANT-01", 13.0),
    _p("EIRP", "EIRP", "dBW", "COM", "P_tx - L_line + G_tx"),
    _p("f_dl", "Downlink frequency", "GHz", "COM-XTX-01", 8.2),
    _p("el_min", "Minimum elevation", "deg", "COM", 10.0),
    _p(
        "d_slant",
        "Slant range at minimum elevation",
        "km",
        "COM",
        "sqrt(a**2 - (R_E*cos(el_min))**2) - R_E*sin(el_min)",
    ),
    _p("c_light", "Speed of light", "km/s", None, 299792.458),
    _p("L_fs", "Free-space path loss", "dB", "COM", "20*log10(4*pi*d_slant*f_dl/c_light)"),
    _p("L_atm", "Atmospheric, pointing and polarisation losses", "dB", "COM", 2.0),
    _p("G_over_T", "Ground station G/T", "dB", None, 23.0, "In dB/K (3.7 m dish)."),
    _p("k_dB", "Boltzmann constant", "dB", None, -228.6, "In dBW/K/Hz."),
    _p("CN0", "Carrier to noise density", "dBHz", "COM", "EIRP - L_fs - L_atm + G_over_T - k_dB"),
    _p("R_data", "Downlink data rate", "Mbit/s", "COM-XTX-01", 50.0),
    _p("R_ref", "Reference rate for dB-Hz", "bit/s", None, 1.0, "10*log10(R/R_ref) is dBHz."),
    _p("EbN0", "Eb/N0", "dB", "COM", "CN0 - 10*log10(R_data/R_ref)"),
    _p("EbN0_req", "Required Eb/N0", "dB", "COM", 4.5, "QPSK, LDPC 3/4, BER 1e-7."),
    _p("L_impl", "Implementation loss", "dB", "COM", 1.0),
    _p("link_margin", "Link margin", "dB", "COM", "EbN0 - EbN0_req - L_impl"),
)

# --------------------------------------------------------------------------- requirements


def _rule(
    key: str, title: str, priority: str, parent: str, rule: RuleSpec, text: str
) -> RequirementSpec:
    return RequirementSpec(key, title, text, priority, "approved", "rule", parent, rule)


REQUIREMENTS: tuple[RequirementSpec, ...] = (
    RequirementSpec(
        "REQ-SYS-001",
        "Mission",
        "The spacecraft shall image the Earth from a 550 km orbit for 5 years and "
        "downlink the data over X-band.",
        "critical",
        "approved",
        "review",
    ),
    _rule(
        "REQ-MASS-001", "Launch mass", "critical", "REQ-SYS-001",
        RuleSpec("m_wet", "<=", 130.0, "kg"),
        "The wet mass shall not exceed 130 kg (launcher rideshare slot).",
    ),
    _rule(
        "REQ-ORB-001", "Orbit period", "medium", "REQ-SYS-001",
        RuleSpec("T_orbit", "between", 94.0, "min", 97.0),
        "The orbit period shall be between 94 and 97 minutes (ground-station revisit plan).",
    ),
    _rule(
        "REQ-PWR-001", "Power margin", "high", "REQ-SYS-001",
        RuleSpec("power_margin", ">=", 20.0, "%"),
        "The orbit-average power margin at end of life shall be at least 20 %.",
    ),
    _rule(
        "REQ-PWR-002", "Battery depth of discharge", "high", "REQ-PWR-001",
        RuleSpec("dod", "<=", 30.0, "%"),
        "The battery depth of discharge per eclipse shall not exceed 30 %.",
    ),
    _rule(
        "REQ-COM-001", "Downlink margin", "critical", "REQ-SYS-001",
        RuleSpec("link_margin", ">=", 3.0, "dB"),
        "The X-band downlink shall close with at least 3 dB margin at 10 deg elevation.",
    ),
    _rule(
        "REQ-COM-002", "Downlink data rate", "high", "REQ-SYS-001",
        RuleSpec("R_data", ">=", 40.0, "Mbit/s"),
        "The downlink data rate shall be at least 40 Mbit/s.",
    ),
    _rule(
        "REQ-PROP-001", "Delta-v", "high", "REQ-SYS-001",
        RuleSpec("dv", ">=", 145.0, "m/s"),
        "The propulsion system shall provide at least 145 m/s of delta-v.",
    ),
    _rule(
        "REQ-THM-001", "Battery thermal margin", "medium", "REQ-SYS-001",
        RuleSpec("T_margin_bat", ">=", 5.0, "K"),
        "The battery shall stay at least 5 K below its qualification temperature.",
    ),
    RequirementSpec(
        "REQ-STR-001",
        "Launch vibration",
        "The structure shall survive the launcher's qualification sine and random "
        "vibration levels without permanent deformation.",
        "critical",
        "approved",
        "test",
        "REQ-SYS-001",
    ),
)  # fmt: skip

TRACE_LINKS: tuple[TraceLinkSpec, ...] = (
    TraceLinkSpec("REQ-SYS-001", "satisfied_by", "component", "SAT"),
    TraceLinkSpec("REQ-MASS-001", "derived_from", "requirement", "REQ-SYS-001"),
    TraceLinkSpec("REQ-MASS-001", "satisfied_by", "component", "SAT"),
    TraceLinkSpec("REQ-MASS-001", "verified_by", "parameter", "m_wet"),
    TraceLinkSpec("REQ-ORB-001", "verified_by", "parameter", "T_orbit"),
    TraceLinkSpec("REQ-PWR-001", "satisfied_by", "component", "EPS-SA-01"),
    TraceLinkSpec("REQ-PWR-001", "verified_by", "parameter", "power_margin"),
    TraceLinkSpec("REQ-PWR-002", "derived_from", "requirement", "REQ-PWR-001"),
    TraceLinkSpec("REQ-PWR-002", "satisfied_by", "component", "EPS-BAT-01"),
    TraceLinkSpec("REQ-PWR-002", "verified_by", "parameter", "dod"),
    TraceLinkSpec("REQ-COM-001", "satisfied_by", "component", "COM-XTX-01"),
    TraceLinkSpec("REQ-COM-001", "satisfied_by", "component", "COM-XANT-01"),
    TraceLinkSpec("REQ-COM-001", "verified_by", "parameter", "link_margin"),
    TraceLinkSpec("REQ-COM-002", "allocated_to", "component", "COM"),
    TraceLinkSpec("REQ-PROP-001", "satisfied_by", "component", "PROP"),
    TraceLinkSpec("REQ-PROP-001", "verified_by", "parameter", "dv"),
    TraceLinkSpec("REQ-THM-001", "satisfied_by", "component", "THM"),
    TraceLinkSpec("REQ-THM-001", "verified_by", "parameter", "T_margin_bat"),
    TraceLinkSpec("REQ-STR-001", "satisfied_by", "component", "STR-PRI-01"),
)

TRADE_STUDIES: tuple[TradeStudySpec, ...] = (
    TradeStudySpec(
        name="Altitude / cells / data rate / Isp",
        description=(
            "How altitude, solar cell efficiency, downlink data rate and thruster Isp "
            "trade wet mass against link and power margins."
        ),
        method="LATIN_HYPERCUBE",
        sample_count=1000,
        seed=42,
        variables=(
            TradeVariableSpec("h", 400.0, 700.0, "km"),
            TradeVariableSpec("eta_cell", 0.20, 0.32, ""),
            TradeVariableSpec("R_data", 10.0, 200.0, "Mbit/s"),
            TradeVariableSpec("isp", 180.0, 260.0, "s"),
        ),
        outputs=("m_wet", "m_prop", "link_margin", "power_margin", "dod", "T_orbit"),
        objectives=(("m_wet", "minimize"), ("link_margin", "maximize")),
        constraints=("REQ-MASS-001", "REQ-ORB-001", "REQ-PWR-001", "REQ-PWR-002", "REQ-COM-001"),
    ),
)

# A plain dict (the CLI prints DEMO_USER["email"]); DemoModel.user is the typed view.
DEMO_USER: dict[str, str] = {
    "email": "demo@threadline.dev",
    "password": "threadline-demo",
    "display_name": "Demo Engineer",
    "organization": "Acme Space",
}


def demo_model() -> DemoModel:
    """The demo project. Specs are frozen; copy ``properties`` dicts before mutating them."""
    return DemoModel(
        project_name="LEO-1 Smallsat",
        project_description="A 100 kg LEO Earth-observation smallsat: the Threadline demo.",
        user=DemoUser(**DEMO_USER),
        component_types=COMPONENT_TYPES,
        components=COMPONENTS,
        connectors=CONNECTORS,
        parameters=PARAMETERS,
        requirements=REQUIREMENTS,
        trace_links=TRACE_LINKS,
        trade_studies=TRADE_STUDIES,
    )


def demo_values(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Every parameter's value in its own unit: inputs as given, derived ones computed."""
    model = demo_model()
    values: dict[str, float] = {p.symbol: p.value for p in model.parameters if p.value is not None}
    values.update(overrides or {})
    values.update(model.parameter_graph(overrides).evaluate_all())
    return values
