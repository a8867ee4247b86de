"""The shape of the demo district: sites, teams, volunteers and officials.

Modelled on Wulingyuan district (武陵源区, Zhangjiajie, Hunan) as the 2021
report in 雷锋 magazine describes it (``/work/shared/SOURCE-ARTICLE.md``,
DESIGN.md §1): one new-era civilization practice centre, 6 institutes (所),
33 stations (站), bases (基地), 20 tourist volunteer demonstration posts
(旅游志愿服务示范岗), 238 house-meeting sites (屋场), 225 volunteer teams in a
"1+6+20+33" system plus 20 professional teams, 20,000+ registered volunteers
and officials of district departments who report to a community and a post
(双报到).

Names are illustrative: the institute and village names follow the
district's townships and villages, the rest is generated. Ids are stable and
readable (``WLY-ZHAN-07``), volunteer numbers follow the unified volunteer
number (志愿者统一编号) with the district's administrative code 430811 and
carry no personal data.

:func:`build_network` is deterministic for a given ``random.Random`` state
and ``scale``: ``scale`` multiplies every count (at least one of each kind),
so ``--events`` can grow or shrink the district while keeping its shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

DISTRICT = "WLY"
"""Id of the district practice centre, also the prefix of every id."""

DISTRICT_CODE = "430811"
"""Administrative division code of Wulingyuan district (in volunteer numbers)."""

CENTRE_GEO = (29.346, 110.548)
"""Where the district centre is (军地坪, the district seat)."""

BASE_COUNTS = {
    "institute": 6,
    "station": 33,
    "post": 20,
    "base": 8,
    "house_meeting_site": 238,
    "team": 225,
    "volunteer": 20_000,
    "official": 400,
    "department": 40,
}
"""The reference district (DESIGN.md §1); multiplied by ``scale``."""

MINIMUM_COUNTS = {
    "institute": 1,
    "station": 2,
    "post": 1,
    "base": 1,
    "house_meeting_site": 3,
    "team": 4,
    "volunteer": 60,
    "official": 4,
    "department": 2,
}
"""The smallest district that still exercises every path."""

INSTITUTE_NAMES = ("军地坪街道", "索溪峪街道", "天子山街道", "中湖乡", "协合乡", "武陵源景区")
"""Townships of the district (the sixth institute serves the scenic area)."""

VILLAGE_NAMES = (
    "军地坪", "龙尾巴", "高云", "双峰", "插旗峪", "喻家嘴", "宝峰", "吴家峪", "沙坪",
    "索溪", "金杜", "岩门", "泗南峪", "天子山", "黄河", "泉坪", "杨家界", "青龙垭",
    "野鸡铺", "中湖", "施家峪", "鱼泉峪", "协合", "双星", "三家馆", "龙凤", "土地峪",
    "大湾", "老屋场", "向家坪", "田家湾", "唐家坡", "桃花溪", "五里坡", "青岩",
    "石门", "新桥", "枫香", "长岭", "水田",
)  # fmt: skip
"""Village and community names for stations (cycled, numbered when exhausted)."""

POST_NAMES = (
    "标志门", "黄龙洞", "宝峰湖", "天子山索道", "袁家界", "十里画廊", "杨家界", "溪布街",
    "水绕四门", "百龙天梯", "金鞭溪", "武陵源汽车站", "张家界高铁站接驳点", "天子山镇游客中心",
    "森林公园门票站", "军地坪广场", "索溪峪河畔", "黄石寨", "秀丽客栈街", "魅力湘西剧场",
)  # fmt: skip
"""Where the tourist volunteer service posts (旅游志愿服务示范岗) stand."""

BASE_NAMES = (
    "红色教育", "生态文明", "土家民俗文化", "科普教育", "国防教育", "非遗传承", "法治教育",
    "农耕文化",
)  # fmt: skip
"""Kinds of practice bases (新时代文明实践基地)."""

TEAM_CATEGORIES = (
    "elder_care", "child_care", "civility_persuasion", "tourist_service", "theory_lecture",
    "culture_arts", "environment", "legal_advice", "health_service", "emergency_rescue",
)  # fmt: skip
"""Service categories of teams (and the categories of needs they serve best)."""

PROFESSIONAL_TEAMS = (
    ("党员干部志愿服务队", "theory_lecture"),
    ("理论宣讲志愿服务队", "theory_lecture"),
    ("“五老”志愿服务队", "elder_care"),
    ("文艺轻骑队", "culture_arts"),
    ("景军义工队", "tourist_service"),
    ("鸽子花志愿服务队", "child_care"),
    ("四点半课堂志愿服务队", "child_care"),
    ("文明银行志愿服务队", "civility_persuasion"),
    ("文化夜市志愿服务队", "culture_arts"),
    ("好人故事会宣讲队", "theory_lecture"),
    ("医疗卫生志愿服务队", "health_service"),
    ("法律服务志愿服务队", "legal_advice"),
    ("应急救援志愿服务队", "emergency_rescue"),
    ("生态环保志愿服务队", "environment"),
    ("市民学校志愿服务队", "theory_lecture"),
    ("巾帼志愿服务队", "elder_care"),
    ("青年志愿服务队", "tourist_service"),
    ("科技科普志愿服务队", "theory_lecture"),
    ("心理健康志愿服务队", "health_service"),
    ("交通文明劝导队", "civility_persuasion"),
)
"""The 20 professional teams at district level that the article names or implies."""

SKILLS = (
    "first_aid", "legal_advice", "elder_care", "tutoring", "tour_guide", "english",
    "photography", "performing_arts", "repair", "medical", "psychological_support",
    "driving", "cooking", "it_support", "rescue", "calligraphy",
)  # fmt: skip
"""Skill codes volunteers register with."""

TIERS = (
    ("dormant", 0.70, 0.0, 0.0),
    ("occasional", 0.17, 0.08, 0.35),
    ("regular", 0.105, 0.45, 1.3),
    ("core", 0.025, 1.6, 3.5),
)
"""Volunteer activity tiers: (name, share, min, max sessions a week).

Most registered volunteers do not serve in a given year; a core of retirees,
team leaders and post regulars does most of the work. Mobilisation peaks
(the article: 6,000+ of 20,000 served during the epidemic) reach about 30 %.
"""


@dataclass(frozen=True, slots=True)
class Site:
    """A site of the network as the generator sees it."""

    id: str
    level: str
    parent_id: str | None
    name: str
    lat: float
    lon: float
    institute_id: str
    station_id: str | None = None

    def geo(self) -> dict[str, float]:
        """The site's position as a contract ``GeoPoint``."""
        return {"lat": self.lat, "lon": self.lon}


@dataclass(slots=True)
class Team:
    """A volunteer service team and the site it belongs to."""

    id: str
    site_id: str
    name: str
    category: str
    lead: str | None = None


@dataclass(slots=True)
class Person:
    """A registered volunteer or official (known by the volunteer number only).

    ``rate`` is the expected number of sessions a week (0 for dormant
    volunteers, who never serve and so are the only ones whose status may
    change); ``pool_site`` is where the volunteer usually serves.
    """

    no: str
    home_site_id: str
    skills: list[str]
    tier: str
    rate: float
    registered_on: date
    official: bool = False
    home_unit_id: str | None = None
    post_id: str | None = None
    teams: list[str] = field(default_factory=list)


@dataclass
class Network:
    """The whole district: sites by level, teams, volunteers and officials."""

    centre: Site
    institutes: list[Site]
    stations: list[Site]
    posts: list[Site]
    bases: list[Site]
    meeting_sites: list[Site]
    teams: list[Team]
    people: list[Person]
    departments: list[str]
    sites: dict[str, Site] = field(default_factory=dict)
    teams_by_site: dict[str, list[Team]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Index sites by id and teams by site."""
        for site in self.all_sites():
            self.sites[site.id] = site
        for team in self.teams:
            self.teams_by_site.setdefault(team.site_id, []).append(team)

    def all_sites(self) -> list[Site]:
        """Every site, parents before children (the order they are registered in)."""
        return [
            self.centre,
            *self.institutes,
            *self.stations,
            *self.posts,
            *self.bases,
            *self.meeting_sites,
        ]

    @property
    def officials(self) -> list[Person]:
        """The officials doing the dual check-in (双报到)."""
        return [p for p in self.people if p.official]

    def counts(self) -> dict[str, int]:
        """How many of each kind the district has (for logs and docs)."""
        return {
            "institute": len(self.institutes),
            "station": len(self.stations),
            "post": len(self.posts),
            "base": len(self.bases),
            "house_meeting_site": len(self.meeting_sites),
            "team": len(self.teams),
            "volunteer": sum(1 for p in self.people if not p.official),
            "official": sum(1 for p in self.people if p.official),
        }


def scaled_count(kind: str, scale: float) -> int:
    """Return how many ``kind`` a district of ``scale`` has (never below the minimum)."""
    return max(MINIMUM_COUNTS[kind], round(BASE_COUNTS[kind] * scale))


def _jitter(rng: random.Random, lat: float, lon: float, spread: float) -> tuple[float, float]:
    return (
        round(lat + rng.uniform(-spread, spread), 5),
        round(lon + rng.uniform(-spread, spread), 5),
    )


def _spread(count: int, buckets: int, rng: random.Random) -> list[int]:
    """Split ``count`` items over ``buckets`` as evenly as possible, larger buckets first."""
    base, extra = divmod(count, buckets)
    sizes = [base + (1 if i < extra else 0) for i in range(buckets)]
    if sum(sizes) and min(sizes) == 0:
        rng.shuffle(sizes)
    return sizes


def build_network(rng: random.Random, scale: float, start: date) -> Network:
    """Build a district of ``scale`` (1.0 is the reference district) deterministically.

    ``start`` is the first day of the generated history: volunteers
    registered before it get a ``registered_on`` in the preceding years.
    """
    clat, clon = CENTRE_GEO
    centre = Site(DISTRICT, "centre", None, "武陵源区新时代文明实践中心", clat, clon, DISTRICT)
    institutes = _institutes(rng, scaled_count("institute", scale), centre)
    stations = _stations(rng, max(len(institutes), scaled_count("station", scale)), institutes)
    posts = _posts(rng, scaled_count("post", scale), stations)
    bases = _bases(rng, scaled_count("base", scale), institutes)
    n_meeting = max(len(stations), scaled_count("house_meeting_site", scale))
    meeting_sites = _meeting_sites(rng, n_meeting, stations)
    people = _people(
        rng,
        scale=scale,
        start=start,
        centre=centre,
        institutes=institutes,
        stations=stations,
        posts=posts,
    )
    teams = _teams(
        rng,
        scale=scale,
        centre=centre,
        institutes=institutes,
        stations=stations,
        posts=posts,
        people=people,
    )
    departments = [f"{DISTRICT}-DEPT-{n + 1:02d}" for n in range(scaled_count("department", scale))]
    for person in people:
        if person.official:
            person.home_unit_id = departments[int(person.no[-4:]) % len(departments)]
    return Network(
        centre=centre,
        institutes=institutes,
        stations=stations,
        posts=posts,
        bases=bases,
        meeting_sites=meeting_sites,
        teams=teams,
        people=people,
        departments=departments,
    )


def _name(names: tuple[str, ...], n: int, more: str) -> str:
    """The n-th of ``names``, numbered with ``more`` once the list has been used up."""
    name = names[n % len(names)]
    return name if n < len(names) else name + more.format(n // len(names) + 1)


def _institutes(rng: random.Random, count: int, centre: Site) -> list[Site]:
    institutes: list[Site] = []
    for n in range(count):
        sid = f"{DISTRICT}-SUO-{n + 1:02d}"
        town = _name(INSTITUTE_NAMES, n, "{}片区")
        lat, lon = _jitter(rng, centre.lat, centre.lon, 0.08)
        institutes.append(
            Site(sid, "institute", centre.id, f"{town}新时代文明实践所", lat, lon, sid)
        )
    return institutes


def _stations(rng: random.Random, count: int, institutes: list[Site]) -> list[Site]:
    """Stations in villages and communities (社区 every fourth), spread over the institutes."""
    stations: list[Site] = []
    for i, size in enumerate(_spread(count, len(institutes), rng)):
        parent = institutes[i]
        for _ in range(size):
            n = len(stations)
            sid = f"{DISTRICT}-ZHAN-{n + 1:02d}"
            kind = "社区" if n % 4 == 0 else "村"
            name = f"{_name(VILLAGE_NAMES, n, '{}')}{kind}新时代文明实践站"
            lat, lon = _jitter(rng, parent.lat, parent.lon, 0.03)
            stations.append(Site(sid, "station", parent.id, name, lat, lon, parent.id, sid))
    return stations


def _posts(rng: random.Random, count: int, stations: list[Site]) -> list[Site]:
    """Tourist volunteer posts at the scenic spots, each under a station."""
    posts: list[Site] = []
    for n in range(count):
        station = stations[(n * 7) % len(stations)]
        name = f"{_name(POST_NAMES, n, '{}号')}旅游志愿服务示范岗"
        lat, lon = _jitter(rng, station.lat, station.lon, 0.01)
        sid = f"{DISTRICT}-GANG-{n + 1:02d}"
        posts.append(
            Site(sid, "post", station.id, name, lat, lon, station.institute_id, station.id)
        )
    return posts


def _bases(rng: random.Random, count: int, institutes: list[Site]) -> list[Site]:
    """Practice bases (红色教育, 生态文明 ...), each under an institute."""
    bases: list[Site] = []
    for n in range(count):
        institute = institutes[n % len(institutes)]
        name = f"{_name(BASE_NAMES, n, '{}')}新时代文明实践基地"
        lat, lon = _jitter(rng, institute.lat, institute.lon, 0.02)
        sid = f"{DISTRICT}-JD-{n + 1:02d}"
        bases.append(Site(sid, "base", institute.id, name, lat, lon, institute.id))
    return bases


def _meeting_sites(rng: random.Random, count: int, stations: list[Site]) -> list[Site]:
    """House-meeting sites (屋场), about seven per station, named after its village."""
    sites: list[Site] = []
    for i, size in enumerate(_spread(count, len(stations), rng)):
        station = stations[i]
        village = _short(station)
        for k in range(size):
            sid = f"{DISTRICT}-WC-{len(sites) + 1:03d}"
            lat, lon = _jitter(rng, station.lat, station.lon, 0.015)
            name = f"{village}第{k + 1}屋场"
            sites.append(
                Site(
                    sid,
                    "house_meeting_site",
                    station.id,
                    name,
                    lat,
                    lon,
                    station.institute_id,
                    station.id,
                )
            )
    return sites


def _tier(rng: random.Random, boost: float = 0.0) -> tuple[str, float]:
    """Draw an activity tier; ``boost`` moves share from dormant to the others."""
    draw = rng.random() - boost
    for name, share, low, high in TIERS:
        if draw < share:
            return name, (round(rng.uniform(low, high), 3) if high else 0.0)
        draw -= share
    name, _, low, high = TIERS[-1]
    return name, round(rng.uniform(low, high), 3)


def new_person(
    rng: random.Random, number: int, home: Site, registered_on: date, *, boost: float = 0.0
) -> Person:
    """Return a volunteer with a number, a home site, skills and an activity tier."""
    tier, rate = _tier(rng, boost)
    skills = rng.sample(SKILLS, rng.choice((0, 1, 1, 2, 2, 3)))
    return Person(
        no=f"V{DISTRICT_CODE}{number:07d}",
        home_site_id=home.id,
        skills=skills,
        tier=tier,
        rate=rate,
        registered_on=registered_on,
    )


def home_sites(
    centre: Site, institutes: list[Site], stations: list[Site], posts: list[Site]
) -> tuple[list[Site], list[float]]:
    """Where volunteers are registered, with cumulative weights (stations hold most)."""
    sites = [*stations, *posts, *institutes, centre]
    weights = (
        [0.70 / len(stations)] * len(stations)
        + [0.15 / len(posts)] * len(posts)
        + [0.10 / len(institutes)] * len(institutes)
        + [0.05]
    )
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    return sites, cumulative


def _people(
    rng: random.Random,
    *,
    scale: float,
    start: date,
    centre: Site,
    institutes: list[Site],
    stations: list[Site],
    posts: list[Site],
) -> list[Person]:
    n_volunteers = scaled_count("volunteer", scale)
    n_officials = scaled_count("official", scale)
    sites, cumulative = home_sites(centre, institutes, stations, posts)
    people: list[Person] = []
    # Registrations before the window grow year on year since the national system
    # went live in 2017: the age of a registration is triangular, recent ones likelier.
    for n in range(n_volunteers):
        home = rng.choices(sites, cum_weights=cumulative)[0]
        age_days = int(rng.triangular(1, 8 * 365, 1))
        people.append(new_person(rng, n + 1, home, start - timedelta(days=age_days)))
    for n in range(n_officials):
        station = stations[n % len(stations)]
        post = posts[(n * 3 + n // len(stations)) % len(posts)]
        person = new_person(
            rng, n_volunteers + n + 1, station, start - timedelta(days=rng.randint(30, 1500))
        )
        person.official = True
        person.post_id = post.id
        # Officials serve their post regularly to meet a 50-hour annual quota.
        person.tier = "official"
        person.rate = round(rng.uniform(0.25, 0.6), 3)
        people.append(person)
    return people


def _short(site: Site) -> str:
    """The place part of a site's name (军地坪社区 of 军地坪社区新时代文明实践站)."""
    return site.name.split("新时代")[0].replace("旅游志愿服务示范岗", "")


def _teams(
    rng: random.Random,
    *,
    scale: float,
    centre: Site,
    institutes: list[Site],
    stations: list[Site],
    posts: list[Site],
    people: list[Person],
) -> list[Team]:
    """The "1+6+20+33" system, the professional teams, then social teams at stations."""
    n_teams = scaled_count("team", scale)
    specs: list[tuple[str, str, str]] = [
        (centre.id, "武陵源区新时代文明实践志愿服务总队", "theory_lecture")
    ]
    specs += [(s.id, f"{_short(s)}志愿服务队", "civility_persuasion") for s in institutes]
    specs += [(s.id, f"{_short(s)}志愿服务队", "tourist_service") for s in posts]
    specs += [(s.id, f"{_short(s)}志愿服务队", "elder_care") for s in stations]
    professional = [(centre.id, name, category) for name, category in PROFESSIONAL_TEAMS]
    specs += professional[: max(1, round(len(PROFESSIONAL_TEAMS) * min(scale, 1.0)))]
    k = 0
    while len(specs) < n_teams:
        station = stations[k % len(stations)]
        category = TEAM_CATEGORIES[(k * 3) % len(TEAM_CATEGORIES)]
        name = f"{_short(station)}{k // len(stations) + 2}号志愿服务队"
        specs.append((station.id, name, category))
        k += 1
    specs = specs[:n_teams]
    # Leaders come from the most active volunteers of the team's site when there are any.
    by_site: dict[str, list[Person]] = {}
    for person in people:
        if person.rate >= 0.45 and not person.official:
            by_site.setdefault(person.home_site_id, []).append(person)
    teams: list[Team] = []
    for n, (site_id, name, category) in enumerate(specs):
        candidates = by_site.get(site_id) or []
        lead = rng.choice(candidates).no if candidates else None
        teams.append(Team(f"{DISTRICT}-TEAM-{n + 1:03d}", site_id, name, category, lead))
    return teams
