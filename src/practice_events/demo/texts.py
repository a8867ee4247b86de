"""Words of the demo district: themes, categories, titles and reasons.

Kept apart from the generator so that the simulation reads as rates and
rules. All text is in Chinese as the district's producers would send it, and
none of it names a person.
"""

from __future__ import annotations

MONTHLY_THEMES: dict[int, tuple[str, str]] = {
    1: ("our_festivals_spring", "我们的节日·春节：新春送温暖"),
    2: ("lantern_festival_civility", "我们的节日·元宵：移风易俗树新风"),
    3: ("learn_from_lei_feng", "学雷锋志愿服务月：雷锋家乡学雷锋"),
    4: ("qingming_remembrance", "清明祭英烈·文明祭扫"),
    5: ("labour_and_civil_tourism", "劳动最光荣·文明旅游我先行"),
    6: ("care_for_minors", "关爱未成年人·防溺水安全教育"),
    7: ("flood_prevention", "防汛救灾·党员志愿者在行动"),
    8: ("summer_child_care", "暑期关爱·四点半课堂"),
    9: ("mid_autumn_neighbours", "我们的节日·中秋：邻里守望"),
    10: ("respect_for_elders", "国庆重阳·敬老孝亲"),
    11: ("fire_safety", "消防安全进万家"),
    12: ("rule_of_law_volunteers", "宪法宣传周·国际志愿者日"),
}
"""一月一主题: the district's theme of each calendar month (code, title)."""

ACTIVITY_TITLES: dict[str, str] = {
    "elder_care": "关爱空巢老人上门服务",
    "child_care": "四点半课堂",
    "environment": "人居环境整治",
    "theory_lecture": "理论宣讲",
    "culture_arts": "文化夜市文艺演出",
    "health_service": "健康义诊",
    "legal_advice": "法律咨询进村",
    "civility_persuasion": "文明劝导",
    "tourist_service": "游客咨询引导",
    "emergency_rescue": "防汛抢险",
    "flood_patrol": "防汛夜间巡查",
}
"""Title of an activity by category (the theme is appended)."""

ACTIVITY_CATEGORIES: dict[str, tuple[str, ...]] = {
    "station": (
        "elder_care",
        "child_care",
        "environment",
        "theory_lecture",
        "culture_arts",
        "health_service",
        "legal_advice",
        "civility_persuasion",
    ),
    "post": ("tourist_service", "tourist_service", "civility_persuasion"),
    "institute": ("theory_lecture", "culture_arts", "health_service", "legal_advice"),
    "centre": ("theory_lecture", "culture_arts", "civility_persuasion"),
    "base": ("theory_lecture", "culture_arts", "environment"),
}
"""What each kind of site typically holds."""

CANCEL_REASONS = (
    "暴雨橙色预警，活动取消",
    "场地临时被占用",
    "报名人数不足",
    "与上级检查时间冲突，另行安排",
)

MEETING_TOPICS: dict[int, tuple[str, ...]] = {
    1: ("新春安全用火用电", "移风易俗", "返乡人员就业"),
    2: ("春耕备耕", "移风易俗", "人居环境整治"),
    3: ("学雷锋志愿服务", "春耕补贴政策", "森林防火"),
    4: ("森林防火", "文明祭扫", "农村道路安全"),
    5: ("旅游旺季文明经营", "医保缴费政策", "人居环境整治"),
    6: ("防溺水", "汛期地质灾害防范", "暑期学生安全"),
    7: ("防汛避险", "地质灾害隐患排查", "防溺水"),
    8: ("灾后重建", "防溺水", "秋收准备"),
    9: ("邻里纠纷调解", "开学资助政策", "中秋文明过节"),
    10: ("敬老孝亲", "森林防火", "养老保险政策"),
    11: ("消防安全", "冬季用电安全", "村规民约修订"),
    12: ("宪法宣传", "冬季防火", "年终村务公开"),
}
"""House-meeting topics by month (屋场会 agendas follow the season)."""

STEP_SUMMARIES: dict[str, tuple[str, ...]] = {
    "explain": ("讲解惠民政策", "宣讲党的创新理论", "讲解安全知识", "通报村务进展"),
    "listen": ("听取群众意见建议", "收集群众急难愁盼", "听取村民对村务的意见"),
    "perform": ("表演三句半", "花灯戏表演", "小品《移风易俗》", "快板说政策"),
    "evaluate": ("评议最美家庭", "评议人居环境红黑榜", "评议好人好事"),
    "resolve": ("现场答复群众问题", "梳理责任清单并明确完成时限", "当场协调解决邻里矛盾"),
}
"""What each of the five steps 讲听演评办 did, as the app records it."""

CONCERNS: tuple[tuple[str, str], ...] = (
    ("road_repair", "组道路面破损，雨天积水"),
    ("street_lighting", "村口路灯不亮"),
    ("elder_care", "独居老人希望有人定期上门看望"),
    ("child_care", "留守儿童放学后无人辅导作业"),
    ("drinking_water", "自来水水压不足"),
    ("environment", "垃圾收运不及时"),
    ("dispute", "邻里宅基地边界纠纷"),
    ("policy_consult", "咨询医保缴费与报销政策"),
    ("landslide_risk", "屋后山体有裂缝，担心滑坡"),
    ("home_repair", "困难户房屋漏雨"),
)
"""Concerns residents raise at house meetings (category, summary)."""

NEED_CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("home_repair", "home_repair", "为独居老人修理漏水水管"),
    ("elder_care", "elder_care", "高龄老人希望每周有人上门陪伴"),
    ("child_care", "child_care", "留守儿童需要暑期作业辅导"),
    ("daily_goods", "elder_care", "微心愿：一件过冬棉衣"),
    ("school_supplies", "child_care", "微心愿：一个新书包和文具"),
    ("legal_advice", "legal_advice", "咨询务工工资拖欠维权"),
    ("health_check", "health_service", "慢性病老人需要上门测血压"),
    ("transport", "tourist_service", "行动不便老人需陪同就医"),
    ("psychological_support", "health_service", "家庭变故后需要心理疏导"),
    ("environment", "environment", "屋前沟渠堵塞需要清理"),
)
"""Resident needs: (category, team category that serves it, summary)."""

FLOOD_NEEDS: tuple[tuple[str, str, str], ...] = (
    ("flood_relief", "emergency_rescue", "房屋进水，需帮助转移物资"),
    ("flood_relief", "emergency_rescue", "灾后清淤，需志愿者帮助清理"),
    ("daily_goods", "elder_care", "受灾群众急需饮用水和食品"),
)
"""Needs of the flood season (July-August)."""

WISH_ITEMS = (
    "微心愿：一件过冬棉衣",
    "微心愿：一个新书包和文具",
    "微心愿：一台助听器",
    "微心愿：一套课外读物",
    "微心愿：一双运动鞋",
    "微心愿：一个电饭煲",
)
"""Micro-wishes (微心愿) posted on the wish wall."""

NEED_REJECT_REASONS = (
    "超出本站服务范围，已告知群众向乡镇政府反映",
    "属于政府部门职责，已转12345热线办理",
    "重复提交，已合并到原需求",
)

REDISPATCH_REASONS = (
    "原接单志愿者本周生病无法上门",
    "原服务队缺少专业技能，改派专业队伍",
    "群众希望改派离家更近的志愿者",
)

FINDING_CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("records_incomplete", "has_records", "活动记录台账不完整，缺少签到表和照片"),
    ("plan_missing", "has_plan", "未制定本月活动计划或计划未公示"),
    ("team_roster_outdated", "has_team", "志愿服务队名册未更新"),
    ("project_idle", "has_project", "服务项目长期未开展"),
    ("rules_not_posted", "has_rules", "管理制度未上墙"),
    ("facility_damaged", "has_site", "活动室设施损坏，影响使用"),
    ("signage_missing", "has_site", "阵地标识标牌缺失"),
    ("theme_not_publicised", "has_plan", "一月一主题未宣传"),
)
"""Findings of inspections: (category, six-haves item not met, description)."""

SAFETY_FINDINGS: tuple[tuple[str, str, str], ...] = (
    ("safety_hazard", "has_site", "活动室电线老化裸露，存在触电隐患"),
    ("fire_safety", "has_site", "灭火器过期，消防通道堵塞"),
    ("flood_damage", "has_site", "活动阵地进水受损，存在安全隐患"),
    ("landslide_risk", "has_site", "阵地后山出现裂缝，存在滑坡风险"),
)
"""Safety findings (critical or high severity), commoner in the flood season."""

RETURN_BASES: dict[str, str] = {
    "not_my_jurisdiction": "该阵地产权及管理属于乡镇，不属本站职责",
    "insufficient_info": "反馈内容不具体，无法确定整改对象",
    "duplicate": "与上月已反馈问题重复",
}

REJECT_HOURS_REASONS = (
    "签到地点与活动地点不符",
    "重复签到，同一时段已有服务记录",
    "经核实未实际参加活动",
)

CORRECTION_REASONS_DOWN = ("扣除往返路程时间", "活动提前结束，核减时长")
CORRECTION_REASONS_UP = ("签到延迟，按实际开始时间补足", "夜间巡查实际至凌晨结束，补足时长")

REDEMPTION_ITEMS: tuple[tuple[str, int], ...] = (
    ("毛巾一条", 30),
    ("理发券", 50),
    ("洗衣液一瓶", 80),
    ("公交卡充值", 100),
    ("食用油一桶", 150),
    ("大米5公斤", 200),
)
"""What volunteers exchange points for at the 文明银行 kiosks (item, points)."""

TRAINING_COURSES: tuple[tuple[str, float, int | None], ...] = (
    ("FIRST-AID", 6.0, 2),
    ("TOUR-GUIDE-SERVICE", 4.0, None),
    ("ELDER-CARE-BASICS", 3.0, None),
    ("THEORY-LECTURER", 8.0, None),
    ("PSYCH-FIRST-AID", 6.0, 2),
)
"""Training courses: (course id prefix, hours, validity in years or None)."""

FLOOD_COURSE = ("FLOOD-RESCUE", 8.0, 1)
"""The course run before each flood season."""
