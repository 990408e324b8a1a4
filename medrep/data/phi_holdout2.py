"""What the "holdout2" split of the labelled PHI set writes with: its vocabulary, identifier
formats, sentence templates, prose and note layouts.

`medrep.data.phi_corpus` describes the split and its span conventions and imports this module on
first use; nothing here runs at import beyond building tables.
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from medrep.data.phi_corpus import (
    _BODY_ROLES,
    _SLOTS,
    Part,
    SplitVocabulary,
    _age_value,
    _any_digits,
    _ascii_lower,
    _closing,
    _Context,
    _date_fields,
    _entries,
    _fill_placeholders,
    _join,
    _Layout,
    _Lines,
    _marked,
    _number_words,
    _pairs,
    _plain,
    _Slot,
    _words,
)

# ---------------------------------------------------------------------------------------------
# People. Each naming tradition writes its names its own way, so a name is drawn from one group.


@dataclass(frozen=True)
class _NameGroup:
    given: tuple[str, ...]
    surnames: tuple[str, ...]
    female: frozenset[str]
    person: tuple[str, ...]  # a name on its own; "[[...]]" marks the span
    patient: tuple[str, ...]  # as a register prints it, a title outside the span
    titles: tuple[str, ...]  # doctors' titles; "" writes the name alone
    credentials: tuple[str, ...]
    english: tuple[str, ...] = ()  # English given names written beside the others ("Winnie")
    female_title: str = ""  # a woman doctor's title where it differs ("Dra.")
    honorifics: tuple[str, str] = ("", "")  # a patient's title, man then woman ("Dhr.", "Mevr.")


def _group(
    given: str,
    surnames: str,
    female: str,
    *,
    person: tuple[str, ...],
    patient: tuple[str, ...],
    titles: tuple[str, ...],
    credentials: tuple[str, ...],
    english: tuple[str, ...] = (),
    female_title: str = "",
    honorifics: tuple[str, str] = ("", ""),
) -> _NameGroup:
    """A group from ';'-separated given names, surnames and the given names that are women's."""
    return _NameGroup(
        given=_entries(given),
        surnames=_entries(surnames),
        female=frozenset(_entries(female)),
        person=person,
        patient=patient,
        titles=titles,
        credentials=credentials,
        english=english,
        female_title=female_title,
        honorifics=honorifics,
    )


_NAME_GROUPS = {
    "dutch": _group(
        "Joost; Maarten; Femke; Bram; Anouk; Sjoerd; Marieke; Jeroen; Floor; Wim",
        """van den Broek; Bakker; de Vries; Mulder; Smit; van Dijk; Hoekstra; Brouwer; Dekker;
        van Leeuwen; Kuipers; Verhoeven""",
        "Femke; Anouk; Marieke; Floor",
        person=("[[{first} {last}]]", "[[{fi} {last}]]", "[[{last}, {first}]]", "[[{sorted}]]"),
        patient=("{hon} [[{fi} {last}]]", "[[{sorted}]]", "[[{LAST}, {first}]]"),
        titles=("dr.", "Prof. dr."),
        credentials=("EDiR", "radiologist", "MD PhD EDiR"),
        honorifics=("Dhr.", "Mevr."),
    ),
    "german": _group(
        """Ulrich; Wolfgang; Gudrun; Friederike; Reto; Urs; Dieter; Sabine; Lukas; Annegret;
        Hans""",
        """Brandstätter; Hofmann; Zimmermann; Schwarz; Krüger; Baumgartner; Brunner; Gerber;
        Keller; Meier; Lüthi; von Arx; Weiß""",
        "Gudrun; Friederike; Sabine; Annegret",
        person=("[[{first} {last}]]", "[[{last}, {first}]]", "[[{fi} {last}]]"),
        patient=("{hon} [[{first} {last}]]", "[[{last}, {first}]]", "[[{LAST}, {first}]]"),
        titles=("Dr. med.", "Prof. Dr. med.", "PD Dr. med.", "Dr.med.", "Dr. med. univ."),
        credentials=("FMH Radiology", "Specialist in Radiology", "EDiR"),
        honorifics=("Herr", "Frau"),
    ),
    "nordic": _group(
        "Mette; Rasmus; Sigrid; Torbjørn; Kjersti; Henrik; Ingeborg; Eirik; Solveig; Frederik",
        """Christensen; Rasmussen; Mortensen; Sandberg; Eriksen; Holm; Bakke; Haugen; Dahl;
        Nyström; Åberg; Sørensen; Kristiansen""",
        "Mette; Sigrid; Kjersti; Ingeborg; Solveig",
        person=("[[{first} {last}]]", "[[{first} {i}. {last}]]", "[[{last}, {first}]]"),
        patient=("[[{first} {last}]]", "[[{last}, {first}]]", "[[{LAST}, {FIRST}]]"),
        titles=("Docent", "Chief Physician", "Consultant"),
        credentials=("MD, DMSc", "specialist in radiology", "MD PhD"),
    ),
    "israeli": _group(
        "Noa; Itai; Tamar; Eitan; Shira; Yoav; Orly; Gilad",
        "Shapiro; Peretz; Biton; Dahan; Azoulay; Shalev; Golan; Ben-Ami",
        "Noa; Tamar; Shira; Orly",
        person=("[[{first} {last}]]", "[[{fi} {last}]]"),
        patient=("[[{last} {first}]]", "[[{first} {last}]]", "[[{LAST} {FIRST}]]"),
        titles=("", "Clinical Assoc. Prof."),
        credentials=("MD, MHA", "senior radiologist"),
    ),
    "gulf": _group(
        """Mohammed; Abdulrahman; Saeed; Sultan; Rashid; Fahad; Hamdan; Mubarak; Hessa; Noura;
        Latifa; Reem; Maha; Moza""",
        """Al-Maktoum; Al-Nahyan; Al-Suwaidi; Al-Mansoori; Al-Qahtani; Al-Otaibi; Al-Dosari;
        Al-Thani; Al-Kuwari; Al-Zahrani; Al-Marri""",
        "Hessa; Noura; Latifa; Reem; Maha; Moza",
        person=("[[{first} {last}]]", "[[{first} {bin} {father} {last}]]", "[[{fi} {last}]]"),
        patient=(
            "[[{first} {bin} {father} {last}]]",
            "[[{FIRST} {FATHER} {LAST}]]",
            "[[{first} {father} {last}]]",
        ),
        titles=("", "Consultant"),
        credentials=("Arab Board (Radiology)", "SBR", "MD, SBR"),
    ),
    "hong_kong": _group(
        "Tai Man; Siu Ming; Ka Wai; Wing Yee; Chi Keung; Yuk Lan; Suet Ying; Wai Kit",
        "Chan; Cheung; Leung; Ho; Yip; Tsang; Kwok; Lam; Fung; Mak; Tse; Chow",
        "Wing Yee; Yuk Lan; Suet Ying",
        person=(
            "[[{LAST} {first}]]",
            "[[{last} {first_h}]]",
            "[[{fi} {LAST}]]",
            "[[{eng} {LAST} {first_h}]]",
        ),
        patient=("[[{LAST} {FIRST}]]", "[[{LAST} {first}]]", "[[{LAST}, {first_h}]]"),
        titles=("", "Consultant"),
        credentials=("FHKCR", "FHKAM (Radiology)", "FHKCR, FHKAM (Radiology)"),
        english=("Winnie", "Kelvin", "Gigi", "Ricky", "Ivan", "Cecilia"),
    ),
    "japanese": _group(
        "Daisuke; Yui; Shota; Akiko; Ryota; Megumi; Tomoko; Kazuhiro",
        """Takahashi; Ito; Yamada; Sasaki; Matsumoto; Kimura; Shimizu; Yamaguchi; Mori;
        Ikeda""",
        "Yui; Akiko; Megumi; Tomoko",
        person=("[[{first} {last}]]", "[[{LAST} {first}]]", "[[{fi} {last}]]"),
        patient=("[[{LAST} {FIRST}]]", "[[{last} {first}]]"),
        titles=("", "Associate Professor"),
        credentials=("JRS board-certified", "diagnostic radiologist"),
    ),
    "korean": _group(
        "Hye-jin; Jae-sung; Seul-gi; Chang-ho; Young-sook; Tae-yang; Kyung-hee; Dae-ho",
        "Kang; Cho; Yoo; Shin; Han; Oh; Kwon; Hwang; Song",
        "Hye-jin; Seul-gi; Young-sook; Kyung-hee",
        person=("[[{last} {first}]]", "[[{first} {last}]]", "[[{LAST} {first}]]"),
        patient=("[[{last} {first}]]", "[[{LAST} {FIRST}]]"),
        titles=("", "Clinical Professor"),
        credentials=("MD (KSR)", "clinical professor"),
    ),
    "taiwanese": _group(
        "Yu-Ting; Shu-Fen; Hsin-Yi; Tsung-Han; Chun-Hung; Yi-Hsuan; Chien-Ming",
        "Hsu; Tsai; Lai; Hsieh; Kuo; Chiu; Liao; Chang",
        "Yu-Ting; Shu-Fen; Hsin-Yi; Yi-Hsuan",
        person=("[[{first} {last}]]", "[[{last} {first}]]", "[[{LAST}, {first}]]"),
        patient=("[[{last} {first}]]", "[[{LAST} {FIRST}]]"),
        titles=("", "Attending"),
        credentials=("MD, MS", "attending radiologist"),
    ),
    "kenyan": _group(
        "Wambui; Achieng; Chebet; Kiprono; Nyambura; Wafula; Mutiso; Njeri",
        "Kamau; Omondi; Ochieng; Kiptoo; Chege; Odhiambo; Wanjiku; Kibet",
        "Wambui; Achieng; Chebet; Nyambura; Njeri",
        person=("[[{first} {last}]]", "[[{fi} {last}]]", "[[{LAST} {first}]]"),
        patient=("[[{LAST} {FIRST}]]", "[[{first} {last}]]"),
        titles=("", "Consultant"),
        credentials=("MBChB, MMed Rad (UoN)", "MMed (Radiology)"),
    ),
    "pakistani": _group(
        "Usman; Faisal; Imran; Junaid; Shahid; Waqas; Zainab; Ayesha; Saima; Rabia",
        "Butt; Chaudhry; Awan; Mirza; Baig; Abbasi; Raza; Gondal",
        "Zainab; Ayesha; Saima; Rabia",
        person=("[[{first} {last}]]", "[[{fi} {last}]]"),
        patient=("[[{first} {last}]]", "[[{FIRST} {LAST}]]"),
        titles=("", "Consultant", "Assistant Professor"),
        credentials=("FCPS (Radiology)", "MBBS, FCPS"),
    ),
    "brazilian": _group(
        "Gustavo; Larissa; Rafaela; Leandro; Bruna; Vinícius",
        "Carvalho; Ribeiro; Almeida; Nascimento; Barbosa; Araújo; Cavalcanti",
        "Larissa; Rafaela; Bruna",
        person=("[[{first} {last} {last2}]]", "[[{first} {last}]]"),
        patient=("[[{first} {last} {last2}]]", "[[{LAST}, {first}]]"),
        titles=("",),
        credentials=("CBR", "titular CBR"),
        female_title="Dra.",
    ),
    "mexican": _group(
        "Itzel; Ernesto; Rogelio; Citlali; Araceli; Octavio",
        "López; Martínez; Sánchez; Ramírez; Flores; Cervantes; Galindo",
        "Itzel; Citlali; Araceli",
        person=("[[{first} {last} {last2}]]", "[[{first} {last}]]"),
        patient=("[[{LAST} {LAST2} {FIRST}]]", "[[{first} {last} {last2}]]"),
        titles=("",),
        credentials=("CMRI", "certified radiologist (CMRI)"),
        female_title="Dra.",
    ),
    "maori": _group(
        "Wiremu; Mere; Hemi; Ngaire; Rāwiri; Tama",
        "Parata; Tipene; Karaka; Pōmare; Horomona",
        "Mere; Ngaire",
        person=("[[{first} {last}]]", "[[{fi} {last}]]"),
        patient=("[[{LAST}, {first}]]", "[[{first} {last}]]"),
        titles=("", "Consultant"),
        credentials=("MBChB", "consultant radiologist"),
    ),
    "us_military": _group(
        "Dwayne; Earl; Tammy; Darnell; Clifford; Loretta; Randall; Wanda",
        "Dubose; Whitlock; Pruitt; McCray; Lovelace; Hargrove; Stallings; Spivey",
        "Tammy; Loretta; Wanda",
        person=("[[{first} {i}. {last}]]", "[[{LAST},{FIRST} {i}]]", "[[{first} {last}]]"),
        patient=("[[{LAST},{FIRST} {i}]]", "[[{LAST}, {FIRST}]]", "{hon} [[{first} {last}]]"),
        titles=("LTC", "MAJ", "CPT", "COL", "LCDR", "CDR", "Lt Col"),
        credentials=("MC, USA", "MC, USN", "USAF, MC"),
        honorifics=("Veteran", "Veteran"),
    ),
}
_GROUPS = tuple(_NAME_GROUPS.values())


def _person_fields(rng: random.Random, group: _NameGroup) -> dict[str, str]:
    """Every written form of one person's name, and a title and credential to go with it."""
    first = rng.choice(group.given)
    last = rng.choice(group.surnames)
    female = first in group.female
    given_words = first.replace("-", " ").split()
    particle, _, core = last.rpartition(" ")  # "van den Broek" -> "van den", "Broek"
    initials = ".".join(w[0].upper() for w in given_words) + "."
    title = group.female_title if female and group.female_title else rng.choice(group.titles)
    last2 = rng.choice([s for s in group.surnames if s != last])
    father = rng.choice([g for g in group.given if g not in group.female])
    return {
        "first": first,
        "FIRST": first.upper(),
        "first_h": "-".join([given_words[0], *(w.lower() for w in given_words[1:])]),
        "fi": initials,
        "eng": rng.choice(group.english) if group.english else first,
        "last": last,
        "LAST": last.upper(),
        "last2": last2,
        "LAST2": last2.upper(),
        "father": father,
        "FATHER": father.upper(),
        "bin": "bint" if female else "bin",
        "so": "D/O" if female else "S/O",
        "i": rng.choice("ABCDEFGHJKLMNPRSTW"),
        "sorted": f"{core}, {initials}" + (f" {particle}" if particle else ""),
        "signoff": "".join(w[0].upper() for w in given_words)
        + "".join(p[0] for p in particle.split())
        + core[0],
        "title": title,
        "cred": rng.choice(group.credentials),
        "hon": group.honorifics[female],
    }


# ---------------------------------------------------------------------------------------------
# Places, institutions and contact details.

_CITIES = _pairs(
    """Tel Aviv/Israel; Haifa/Israel; Beersheba/Israel; Taipei/Taiwan; Kaohsiung/Taiwan;
    Taichung/Taiwan; Busan/South Korea; Daegu/South Korea; Incheon/South Korea;
    Gwangju/South Korea; Dubai/UAE; Abu Dhabi/UAE; Al Ain/UAE; Manama/Bahrain;
    Kuwait City/Kuwait; Dammam/KSA; Medina/KSA; Al Khobar/KSA; Luxembourg/Luxembourg;
    Nuuk/Greenland; Tórshavn/Faroe Islands; Curepipe/Mauritius; Bandar Seri Begawan/Brunei;
    Sha Tin/Hong Kong; Tsuen Wan/Hong Kong; Indianapolis/USA; Baltimore/USA"""
)
_REGIONS = _pairs(
    """Galilee/Israel; Negev/Israel; New Territories/Hong Kong; Eastern Province/KSA;
    Ras Al Khaimah/UAE; Fujairah/UAE; Ajman/UAE; Jeju/South Korea; Gyeonggi/South Korea;
    Hualien/Taiwan; Muharraq/Bahrain"""
)
_DISTRICTS = _entries(
    """Shibuya-ku; Setagaya-ku; Nerima-ku; Kanagawa Prefecture; Saitama Prefecture; Okinawa;
    Kiambu County; Kericho County; Nyeri; Canton Ticino; Gelderland; Friesland; Zeeland;
    Västra Götaland; Rogaland; Kowloon; Sham Shui Po; Songpa-gu; Seocho-gu; Songshan District;
    Xinyi District; Deira; Jumeirah; Mussafah; Al Rayyan; Swat; Northland; Taranaki; Otago;
    Southland; Gisborne"""
)
_TOWNS = _entries(
    """Amsterdam; Rotterdam; Leiden; Eindhoven; Haarlem; Delft; Zwolle; Nijmegen; Heidelberg;
    Freiburg; Cologne; Stuttgart; Dresden; Mannheim; Regensburg; Würzburg; Bern; Zürich;
    Winterthur; Lugano; Copenhagen; Aalborg; Esbjerg; Stockholm; Malmö; Linköping; Umeå; Oslo;
    Trondheim; Stavanger; Bodø; Helsinki; Turku; Tokyo; Yokohama; Nagoya; Sendai; Fukuoka; Kobe;
    Hiroshima; Tauranga; Rotorua; Whangārei; Napier; Invercargill; Whanganui; Timaru; Eldoret;
    Nakuru; Kisii; Machakos; Rawalpindi; Peshawar; Islamabad; Quetta; Faisalabad; Multan;
    Sialkot; Abbottabad; Belo Horizonte; Curitiba; Fortaleza; Campinas; Goiânia; Puebla;
    Querétaro; Tijuana; Hermosillo; León; Toluca; Landstuhl; Ramstein; Yokosuka; Kandahar;
    Herzliya; Netanya; Ashdod; Eilat; Nazareth"""
)
_INSTITUTIONS = _entries(
    """Rigshospitalet; Haukeland University Hospital; Sahlgrenska University Hospital;
    Skåne University Hospital; Helsinki University Hospital; Oslo University Hospital;
    Amsterdam UMC; Erasmus MC; Radboudumc; Leiden University Medical Center; OLVG;
    Klinikum rechts der Isar; Universitätsklinikum Heidelberg; LMU Klinikum; Uniklinik Köln;
    Inselspital; Universitätsspital Zürich; Kantonsspital St. Gallen;
    Landstuhl Regional Medical Center; Hadassah Medical Center; Rambam Health Care Campus;
    Tel Aviv Sourasky Medical Center; Rabin Medical Center; Sheikh Khalifa Medical City;
    Rashid Hospital; King Faisal Specialist Hospital; Hamad General Hospital; Sidra Medicine;
    King Fahad Medical City; Tawam Hospital; Mediclinic City Hospital;
    Salmaniya Medical Complex; Pamela Youde Nethersole Eastern Hospital; Tuen Mun Hospital;
    Kwong Wah Hospital; Ruttonjee Hospital; University of Tokyo Hospital;
    Keio University Hospital; Toranomon Hospital; Kameda Medical Center;
    Juntendo University Hospital; Seoul National University Hospital; Severance Hospital;
    Asan Medical Center; Samsung Medical Center; National Taiwan University Hospital;
    Taipei Veterans General Hospital; Chang Gung Memorial Hospital; Middlemore Hospital;
    Waikato Hospital; Tauranga Hospital; Palmerston North Hospital;
    Moi Teaching and Referral Hospital; Gertrude's Children's Hospital; Kijabe Hospital;
    Shaukat Khanum Memorial Cancer Hospital; Shifa International Hospital;
    Liaquat National Hospital; Indus Hospital; Hospital Sírio-Libanês;
    Hospital Moinhos de Vento; Hospital das Clínicas; Hospital Ángeles Lomas;
    Instituto Nacional de Enfermedades Respiratorias;
    Walter Reed National Military Medical Center; Brooke Army Medical Center;
    Eisenhower Army Medical Center; Richard L. Roudebush VA Medical Center;
    Raymond G. Murphy VA Medical Center; Ralph H. Johnson VA Medical Center;
    Naval Medical Center Portsmouth"""
)
# Whole addresses in each country's own order: '#' a random digit, '%' one that is not zero,
# '@' a random capital letter.
_ADDRESSES = _entries(
    """Flat @, 1#/F, Block %, Tsui Ping Estate, Kwun Tong, Kowloon;
    Room %0#, Wo Lok House, Kwai Chung Estate, Kwai Chung, N.T.;
    Flat @, %/F, %# Tin Hau Temple Road, North Point, Hong Kong;
    %-%#-% Hongo, Bunkyo-ku, Tokyo 113-00##;
    %-%-%# Kitasenzoku, Ota-ku, Tokyo 145-00##;
    %-%# Tenjin, Chuo-ku, Fukuoka 810-00##;
    %#, Yulgok-ro %-gil, Jongno-gu, Seoul 03###;
    Apt 1##-1#0#, Haeundae-ro %##, Haeundae-gu, Busan 48###;
    No. %#, Ln. %##, Sec. %, Roosevelt Rd., Songshan Dist., Taipei City 106;
    %F., No. %##, Zhongzheng Rd., Lingya Dist., Kaohsiung City 802;
    Keizersgracht %##, 1015 @@ Amsterdam;
    Nieuwe Binnenweg %#@, 3014 @@ Rotterdam;
    Breestraat %#, 2311 @@ Leiden;
    Hauptstraße %, 80331 München;
    Sonnenallee %##, 12059 Berlin;
    Bergheimer Str. %#, 69115 Heidelberg;
    Bahnhofstrasse %#, 8001 Zürich;
    Marktgasse %, 3011 Bern;
    Nørrebrogade %#, %. th., 2200 København N;
    Sveavägen %#, 113 ## Stockholm;
    Thorvald Meyers gate %#, 0555 Oslo;
    %# Rothschild Blvd, Tel Aviv-Yafo 66###;
    Derech HaAtzmaut %#, Haifa 33###;
    P.O. Box %####, Dubai, UAE;
    P.O. Box %###, Abu Dhabi;
    Villa %#, Street %#@, Al Barsha %, Dubai;
    Building %###, King Fahd Rd, Al Khobar 3####;
    Zone %#, Street %##, Building %#, Al Sadd;
    Flat %#, Building %##, Road %###, Block %##, Manama;
    %## Matakana Rd, RD %, Warkworth 09##;
    %# Karaka Rd, RD 2, Te Awamutu 38##;
    Flat %, %# Cameron Rd, Tauranga 3110;
    P.O. Box %###-30100, Eldoret;
    Hse %#, Milimani Rd, Nakuru;
    House No. %#, Street %, F-7/2, Islamabad;
    Flat %, Block %#, Hayatabad Phase %, Peshawar;
    Av. Afonso Pena, %###, apto %#, Belo Horizonte - MG, 30130-###;
    Av. Sete de Setembro, %###, Curitiba - PR, 80060-###;
    Av. Juárez %##, Col. Centro, 72000 Puebla, Pue.;
    Blvd. Bernardo Quintana %###, 76090 Querétaro, Qro.;
    Unit %###, Box %###, APO AE 09###;
    PSC %##, Box %###, FPO AP 96###;
    %### Lomas Blvd NE, Albuquerque, NM 871##;
    %## Walton Way, Augusta, GA 309##;
    %# Hope St, Providence, RI 029##"""
)
_US_STATES = _pairs(
    """Maryland/MD; Georgia/GA; Indiana/IN; New Jersey/NJ; Rhode Island/RI; New Hampshire/NH;
    New York/NY"""
)
_US_TOWNS = _pairs(
    """Indianapolis/IN; Albuquerque/NM; Augusta/GA; Savannah/GA; Bethesda/MD; Baltimore/MD;
    Providence/RI; Manchester/NH; Newark/NJ; Buffalo/NY; Syracuse/NY"""
)
_EMAIL_DOMAINS = _entries(
    """seha.ae; dha.gov.ae; hmc.org.qa; kfshrc.edu.sa; ha.org.hk; snuh.org; ntuh.gov.tw;
    regionh.dk; vgregion.se; ous-hf.no; insel.ch; usz.ch; amsterdamumc.nl; erasmusmc.nl;
    mri.tum.de; hadassah.org.il; cmdhb.org.nz; mtrh.go.ke; skm.org.pk; va.gov; health.mil;
    mail.mil; hsl.org.br; gmx.ch; web.de; naver.com; yahoo.co.jp"""
)
_AREA_CODES = _entries("210; 412; 505; 757; 253; 843; 706; 301; 317")
# Numbers as dialled at home or from abroad, by region; '#' a digit, '%' one that is not zero,
# "{area}" a US area code.
_PHONE_FORMATS = {
    "gulf": _entries(
        """+971 4 %## ####; +971 2 %## ####; +971 5# ### ####; +966 11 %## ####;
        +966 5# ### ####; 9200 #####; +973 17 %## ###; +965 2### ####"""
    ),
    "hong_kong": _entries("+852 2### ####; +852 3### ####; 2### ####"),
    "east_asia": _entries(
        """+82 2-%###-####; 02-%###-####; 1588-####; +886 2 %###-####; (02)2###-####;
        03-%###-####; 0120-###-###; (06) %###-####"""
    ),
    "europe": _entries(
        """020-%## ####; (020) %## ## ##; 06-%### ####; 030 %###-####; (0221) %###-####;
        0176 ########; +41 44 %## ## ##; +41 (0)31 %## ## ##; +45 %# ## ## ##;
        +46 (0)8-%## ### ##; 040-%# ## ##; +47 %# ## ## ##; +972-3-%##-####; 04-%##-####"""
    ),
    "nz_kenya_pakistan": _entries(
        """(09) %## ####; 021 ### ####; 0800 %## ###; (03) %## ####; +254 20 %## ####;
        07## ######; +92 21 %### ####; 03##-#######; (042) 111-###-###"""
    ),
    "americas": _entries(
        """+55 31 %###-####; (31) 9####-####; +55 (41) 3###-####; (222) %## ####;
        ({area}) %##-####; ({area}) %## ####; DSN [[3##-####]]"""
    ),
}
_PAGER_FORMATS = ("DECT [[####]]", "cordless [[#####]]", "pocket phone [[####]]")
_EXTENSION_FORMATS = ("App. [[####]]", "internal [[####]]", "direct dial [[#####]]")
_EMAIL_LOCAL_PARTS = (
    "{f}.{last}",
    "{first}{last}{nn}",
    "{last}_{f}",
    "dr.{last}",
    "{last}{initials}",
    "telerad.desk",
    "ris-support",
    "radiologie.sekretariat",
)

VOCABULARY = SplitVocabulary(
    first_names=tuple(n for g in _GROUPS for n in (*g.given, *g.english)),
    surnames=tuple(s for g in _GROUPS for s in g.surnames),
    cities=_CITIES,
    regions=_REGIONS,
    us_states=_US_STATES,
    us_towns=_US_TOWNS,
    uk_towns=(),
    au_towns=(),
    institutions=_INSTITUTIONS,
    streets=(),
    street_types=(),
    street_directions=(),
    email_domains=_EMAIL_DOMAINS,
    doctor_titles=tuple(
        dict.fromkeys(t for g in _GROUPS for t in (*g.titles, g.female_title) if t)
    ),
    patient_titles=tuple(dict.fromkeys(h for g in _GROUPS for h in g.honorifics if h)),
    credentials=tuple(dict.fromkeys(c for g in _GROUPS for c in g.credentials)),
    area_codes=_AREA_CODES,
    intl_phone_patterns=tuple(p for ps in _PHONE_FORMATS.values() for p in ps if "+" in p),
    month_abbreviations=_entries(
        "Jan.; Feb.; Mar.; Apr.; May; Jun.; Jul.; Aug.; Sep.; Oct.; Nov.; Dec."
    ),
    other_towns=_TOWNS,
    world_addresses=_ADDRESSES,
    districts=_DISTRICTS,
)

# ---------------------------------------------------------------------------------------------
# Dates and times. Besides phi_corpus's fields: Roman months, day ordinals in words, Japanese
# era years, Taiwanese (ROC) years and tabular Hijri dates.

_ROMAN = _words("I II III IV V VI VII VIII IX X XI XII")
_ORDINAL_WORDS = _words(
    """first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth
    thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"""
)
# (first day, letter, year offset) of the Reiwa, Heisei, Showa and Taisho eras, newest first
_JAPANESE_ERAS = (
    (datetime.date(2019, 5, 1), "R", 2018),
    (datetime.date(1989, 1, 8), "H", 1988),
    (datetime.date(1926, 12, 25), "S", 1925),
    (datetime.date(1912, 7, 30), "T", 1911),
)


def _ordinal_words(n: int) -> str:
    """1 -> 'first', 24 -> 'twenty-fourth' (1 <= n <= 29)."""
    return _ORDINAL_WORDS[n - 1] if n <= 20 else f"twenty-{_ORDINAL_WORDS[n - 21]}"


def _japanese_era(date: datetime.date) -> str:
    """'H31' for 4 February 2019, 'S6' for 1931."""
    start, letter, offset = next(era for era in _JAPANESE_ERAS if date >= era[0])
    return f"{letter}{date.year - offset}"


def _hijri(date: datetime.date) -> tuple[int, int, int]:
    """(year, month, day) of the tabular Islamic calendar (civil epoch) for a Gregorian date."""
    days = date.toordinal() + 1721425 - 1948440 + 10632  # Julian day number, shifted
    cycles = (days - 1) // 10631
    days = days - 10631 * cycles + 354
    years = ((10985 - days) // 5316) * ((50 * days) // 17719) + (days // 5670) * (
        (43 * days) // 15238
    )
    days = (
        days
        - ((30 - years) // 15) * ((17719 * years) // 50)
        - (years // 16) * ((15238 * years) // 43)
        + 29
    )
    month = (24 * days) // 709
    return 30 * cycles + years - 30, month, days - (709 * month) // 24


def _dated(ctx: _Context, years: tuple[int, int] = (1998, 2024)) -> dict[str, str]:
    fields = _date_fields(ctx, years)
    date = datetime.date(int(fields["yyyy"]), int(fields["m"]), int(fields["d"]))
    hijri_year, hijri_month, hijri_day = _hijri(date)
    return fields | {
        "ROMAN": _ROMAN[date.month - 1],
        "dwords": _ordinal_words(date.day),
        "era": _japanese_era(date),
        "roc": str(date.year - 1911),
        "hijri": f"{hijri_day:02d}/{hijri_month:02d}/{hijri_year}",
    }


_ZONES = ("GST", "KST", "JST", "HKT", "CET", "CEST", "NZST", "PKT", "EAT", "BRT", "AST")


def _timed(rng: random.Random) -> dict[str, str]:
    hour = rng.randint(0, 23)
    minute = rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50)) if rng.random() < 0.6 else None
    minute = rng.randint(0, 59) if minute is None else minute
    if 5 <= hour < 12:
        period = "in the morning"
    elif 12 <= hour < 17:
        period = "in the afternoon"
    else:
        period = "in the evening" if 17 <= hour < 21 else "at night"
    return {
        "H": str(hour),
        "HH": f"{hour:02d}",
        "MM": f"{minute:02d}",
        "SS": f"{rng.randint(0, 59):02d}",
        "h": str(hour % 12 or 12),
        "AP": "PM" if hour >= 12 else "AM",
        "period": period,
        "zone": rng.choice(_ZONES),
    }


_DATE_FORMATS = {
    "iso_month_name": ("{yyyy}-{Mon}-{dd}", "{yyyy}-{MON}-{dd}"),
    "roman_month": ("{dd}.{ROMAN}.{yyyy}", "{d}.{ROMAN}.{yyyy}", "{d} {ROMAN} {yyyy}"),
    "apostrophe_year": ("{d} {mon} '{yy}", "{d} {month} '{yy}"),
    "month_ordinal": ("{Mon} {dth}",),
    "day_month": ("{dd} {Mon}", "{Mon}-{dd}"),
    "words": ("the [[{dwords} of {month}]]", "{month} the {dwords}"),
    "east_asian": ("{yyyy}/{m}/{d}", "{era}.{mm}.{dd}", "{roc}/{mm}/{dd}"),
    "european": ("{dd}.{mm}.{yy}", "{d}/{m}-{yyyy}"),
    "military": ("{d} {Mon} {yy}", "{MON} {dd}, {yyyy}"),
}
_MONTH_YEAR_FORMATS = ("{yyyy}-{mm}", "{ROMAN}/{yyyy}", "{month} '{yy}", "{Mon}/{yyyy}")
_DAY_FORMATS = ("{weekday} the {dth}",)
_DOB_FORMATS = (
    "{yyyy}-{Mon}-{dd}",
    "{d}.{ROMAN}.{yyyy}",
    "{era}.{mm}.{dd}",
    "{dd}.{mm}.{yyyy}",
    "{yyyy}/{mm}/{dd}",
)
_HIJRI_FORMATS = ("[[{dd}/{mm}/{yyyy}]] ([[{hijri}]] H)", "[[{yyyy}-{mm}-{dd}]] / [[{hijri}]] AH")
# (date, separator, time) patterns of a time stamp
_STAMP_FORMATS = (
    ("{yyyy}-{mm}-{dd}", "T", "{HH}:{MM}"),
    ("{yyyy}-{mm}-{dd}", "T", "{HH}:{MM}:{SS}"),
    ("{MON} {dd}, {yyyy}", "@", "{HH}:{MM}"),
    ("{yyyy}/{mm}/{dd}", " ", "{HH}:{MM}"),
    ("{dd}.{mm}.{yyyy}", ", ", "{HH}:{MM}"),
)
_TIME_FORMATS = {
    "dutch": ("{HH}u{MM}",),
    "zoned": ("[[{HH}:{MM}]] {zone}",),
    "spoken": ("{h}:{MM} {period}",),
    "nordic": ("kl. [[{HH}.{MM}]]",),
    "hour_only": ("{HH}h",),
    "zulu": ("[[{HH}{MM}]]Z",),
}


def _format(
    ctx: _Context, patterns: Sequence[str], fields: dict[str, str], category: str | None
) -> list[Part]:
    """phi_corpus's `_format`, where '%' is also a placeholder: a digit that is not zero."""
    pattern = re.sub("%", lambda _: str(ctx.rng.randint(1, 9)), ctx.rng.choice(patterns))
    return _marked(_fill_placeholders(ctx.rng, pattern).format(**fields), category)


def _pick(
    ctx: _Context, families: Mapping[str, Sequence[str]], fields: dict[str, str], category: str
) -> list[Part]:
    family = ctx.rng.choice(tuple(families))
    return _format(ctx, families[family], fields, category)


def _slot_date(ctx: _Context) -> list[Part]:
    return _pick(ctx, _DATE_FORMATS, _dated(ctx), "date")


def _slot_month_year(ctx: _Context) -> list[Part]:
    return _format(ctx, _MONTH_YEAR_FORMATS, _dated(ctx), "date")


def _slot_day(ctx: _Context) -> list[Part]:
    return _format(ctx, _DAY_FORMATS, _dated(ctx), "date")


def _slot_dob(ctx: _Context) -> list[Part]:
    return _format(ctx, _DOB_FORMATS, _dated(ctx, (1922, 1990)), "date")


def _slot_hijri(ctx: _Context) -> list[Part]:
    return _format(ctx, _HIJRI_FORMATS, _dated(ctx), "date")


def _stamp(ctx: _Context, formats: Sequence[tuple[str, str, str]]) -> list[Part]:
    date_pattern, separator, time_pattern = ctx.rng.choice(formats)
    fields = _dated(ctx) | _timed(ctx.rng)
    return [
        (date_pattern.format(**fields), "date"),
        (separator, None),
        (time_pattern.format(**fields), "time"),
    ]


def _slot_stamp(ctx: _Context) -> list[Part]:
    return _stamp(ctx, _STAMP_FORMATS)


def _slot_hl7_stamp(ctx: _Context) -> list[Part]:
    """An HL7 time stamp, date and time run together: one date span."""
    fields = _dated(ctx) | _timed(ctx.rng)
    return [("{yyyy}{mm}{dd}{HH}{MM}".format(**fields), "date")]


def _slot_hl7_dob(ctx: _Context) -> list[Part]:
    return [("{yyyy}{mm}{dd}".format(**_dated(ctx, (1922, 1990))), "date")]


def _slot_time(ctx: _Context) -> list[Part]:
    return _pick(ctx, _TIME_FORMATS, _timed(ctx.rng), "time")


# ---------------------------------------------------------------------------------------------
# Telephone numbers, e-mail addresses and identifiers.


def _slot_phone(ctx: _Context) -> list[Part]:
    return _pick(ctx, _PHONE_FORMATS, {"area": ctx.rng.choice(_AREA_CODES)}, "phone")


def _slot_pager(ctx: _Context) -> list[Part]:
    return _format(ctx, _PAGER_FORMATS, {}, "phone")


def _slot_extension(ctx: _Context) -> list[Part]:
    return _format(ctx, _EXTENSION_FORMATS, {}, "phone")


# letters that Unicode does not decompose into a base letter and an accent
_TRANSLITERATION = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "ß": "ss"})


def _email(rng: random.Random, person: dict[str, str]) -> str:
    first = _ascii_lower(person["first"].translate(_TRANSLITERATION))
    fields = {
        "first": first,
        "f": first[:1],
        "last": _ascii_lower(person["last"].translate(_TRANSLITERATION)),
        "initials": _ascii_lower(person["fi"])[1:],
        "nn": str(rng.randint(1, 99)),
    }
    local = rng.choice(_EMAIL_LOCAL_PARTS).format(**fields)
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _slot_email(ctx: _Context) -> list[Part]:
    person = _person_fields(ctx.rng, ctx.rng.choice(_GROUPS))
    return [(_email(ctx.rng, person), "email")]


def _bsn(rng: random.Random) -> str:
    """A Dutch citizen service number that passes the eleven test."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(8)]
        digits[0] = rng.randint(1, 6)
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return "".join(map(str, digits)) + str(check)


def _hkid(rng: random.Random) -> str:
    """A Hong Kong identity card number with its check digit: 'A123456(7)'."""
    letter = rng.choice("ACDEGHKMPRVWYZ")
    digits = [rng.randint(0, 9) for _ in range(6)]
    total = (
        36 * 9
        + (ord(letter) - 55) * 8
        + sum(d * w for d, w in zip(digits, range(7, 1, -1), strict=True))
    )
    check = (11 - total % 11) % 11
    return f"{letter}{''.join(map(str, digits))}({'A' if check == 10 else check})"


def _national_fields(rng: random.Random) -> dict[str, str]:
    """Identity numbers that carry a date of birth, and numbers with check digits."""
    born = datetime.date(rng.randint(1925, 1999), rng.randint(1, 12), rng.randint(1, 28))
    curp_state = rng.choice(("PL", "QT", "DF", "JC", "NL"))
    consonants = "".join(rng.choice("BCDFGHJLMNPRSTVZ") for _ in range(3))
    curp_head = "".join(rng.choice("ABCEGHLMNOPRSTV") for _ in range(4)) + f"{born:%y%m%d}"
    return {
        "bsn": _bsn(rng),
        "hkid": _hkid(rng),
        "rrn": f"{born:%y%m%d}-{rng.choice('12')}{_any_digits(rng, 6)}",
        "cpr": f"{born:%d%m%y}-{_any_digits(rng, 4)}",
        "pnr": f"{born:%Y%m%d}-{_any_digits(rng, 4)}",
        "eid": f"784-{born.year}-{_any_digits(rng, 7)}-{rng.randint(0, 9)}",
        "curp": f"{curp_head}{rng.choice('HM')}{curp_state}{consonants}0{rng.randint(0, 9)}",
    }


# Identity, insurance, veterans' and registration numbers carry their cue, outside the span.
_ID_FORMATS = {
    "mrn": ("HN-####-####-@", "@@-##-######", "########-#", "####-####-##", "00-###-###-@"),
    "acc": ("RA##-#######", "ACC-####-#####", "CR#########", "201#XR######", "@@##########"),
    "order": ("ORD-####-######", "#########-@", "OR-##-#####"),
    "bare": ("##########", "############", "E##########"),
    "case": ("###", "####"),
    "msg": ("MSG#####", "##########"),
    "provider_code": ("#####", "@####"),
    "natid": (
        "NHI [[@@@####]]",
        "HKID [[{hkid}]]",
        "Emirates ID [[{eid}]]",
        "RRN [[{rrn}]]",
        "BSN [[{bsn}]]",
        "CPR [[{cpr}]]",
        "pers.nr [[{pnr}]]",
        "AHV [[756.####.####.##]]",
        "Iqama [[2#########]]",
        "QID [[2##########]]",
        "CNIC [[#####-#######-#]]",
        "T.Z. [[#########]]",
        "CURP [[{curp}]]",
        "CPF [[###.###.###-##]]",
    ),
    "insurance": (
        "Thiqa [[#######]]",
        "NHIF no. [[########]]",
        "CNS [[7## #### #### ####]]",
        "AOK [[@#########]]",
        "NSS [[###########]]",
        "Daman [[###-###-#########-##]]",
        "TRICARE, DoD ID [[##########]]",
    ),
    "veteran": (
        "SSN last 4: [[####]]",
        "last-4 [[@####]]",
        "ICN [[##########V######]]",
        "EDIPI [[##########]]",
    ),
    "provider": (
        "BIG-register [[###########]]",
        "GLN [[7601000######]]",
        "DHA licence [[#####]]",
        "PMDC [[#####-P]]",
        "MCNZ [[#####]]",
        "NPI [[##########]]",
    ),
}


def _slot_id(kind: str) -> _Slot:
    def fill(ctx: _Context) -> list[Part]:
        fields = _national_fields(ctx.rng) if kind == "natid" else {}
        return _format(ctx, _ID_FORMATS[kind], fields, "id")

    return fill


# Record numbers that layouts print: an HL7 message control id, a VistA case number, an ordering
# provider's code.
_slot_message_id = _slot_id("msg")
_slot_case_id = _slot_id("case")
_slot_provider_code = _slot_id("provider_code")

# ---------------------------------------------------------------------------------------------
# Ages, names, addresses and places.

_AGE_FORMATS = {
    "adj": ("[[{n}]]-years-old", "[[{n}]] years-old", "[[{words}]]-years-old"),
    "paren": ("([[{n}]] y)", "([[{n}]] Y)", "([[{n}]] y.)"),
    "pred": ("aet. [[{n}]]", "[[{n}]]y {mo}m", "[[{n}]] years {mo} months"),
    "sex": ("{sex}/[[{n3}]]Y", "[[{n}]]Y/{sex}", "{sexword}, [[{n}]]"),
}
_DOB_AGE_FORMATS = (" ([[{n}]] y)", " / [[{n3}]]Y", ", aet. [[{n}]]")


def _age_fields(rng: random.Random, age: int) -> dict[str, str]:
    sex = rng.choice("MF")
    return {
        "n": str(age),
        "n3": f"{age:03d}",
        "words": _number_words(age),
        "mo": str(rng.randint(1, 11)),
        "sex": sex,
        "sexword": "male" if sex == "M" else "female",
    }


def _slot_age(form: str, identifier: bool) -> _Slot:
    """Ages over 89 are identifiers; younger ones are planted unlabelled."""

    def fill(ctx: _Context) -> list[Part]:
        fields = _age_fields(ctx.rng, _age_value(ctx.rng, identifier))
        return _format(ctx, _AGE_FORMATS[form], fields, "age" if identifier else None)

    return fill


_AGE_REFERENCE_YEAR = 2024


def _slot_dob_with_age(identifier: bool) -> _Slot:
    """A date of birth (always a date) and the age it gives (an identifier only over 89)."""

    def fill(ctx: _Context) -> list[Part]:
        age = _age_value(ctx.rng, identifier)
        born = _AGE_REFERENCE_YEAR - age - 1
        date = _format(ctx, _DOB_FORMATS, _dated(ctx, (born, born)), "date")
        fields = _age_fields(ctx.rng, age)
        return [*date, *_format(ctx, _DOB_AGE_FORMATS, fields, "age" if identifier else None)]

    return fill


def _slot_name(form: str) -> _Slot:
    """A name as `form` writes it: "doctor" with a title, "signature" with a credential,
    "person" bare, "patient" as a register prints it."""

    def fill(ctx: _Context) -> list[Part]:
        group = ctx.rng.choice(_GROUPS)
        fields = _person_fields(ctx.rng, group)
        prefix = "{title} " if fields["title"] else ""  # a group may write no title
        if form == "doctor":
            patterns: Sequence[str] = [prefix + p for p in group.person]
        elif form == "signature":
            patterns = [
                *(f"{p}, {{cred}}" for p in group.person),
                *(f"{p} ({{cred}})" for p in group.person),
                *(f"{prefix}{p}, {{cred}}" for p in group.person if prefix),
            ]
        elif form == "patient":
            patterns = [p for p in group.patient if "{hon}" not in p or fields["hon"]]
        else:
            patterns = group.person
        return _format(ctx, patterns, fields, "name")

    return fill


def _slot_patient_with_parent(ctx: _Context) -> list[Part]:
    """Pakistani registers name a patient with a parent: two name spans around 'S/O'."""
    fields = _person_fields(ctx.rng, _NAME_GROUPS["pakistani"])
    return _format(ctx, ("[[{first} {last}]] {so} [[{father} {last}]]",), fields, "name")


def _slot_surname(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.rng.choice(_GROUPS).surnames), "name")]


def _slot_signoff(ctx: _Context) -> list[Part]:
    """A reader's initials ("PvdB" for Pieter van den Broek)."""
    return [(_person_fields(ctx.rng, ctx.rng.choice(_GROUPS))["signoff"], "name")]


def _slot_hl7_name(ctx: _Context) -> list[Part]:
    fields = _person_fields(ctx.rng, ctx.rng.choice(_GROUPS))
    return [(f"{fields['LAST']}^{fields['FIRST']}", "name")]


def _slot_vista_name(ctx: _Context) -> list[Part]:
    fields = _person_fields(ctx.rng, _NAME_GROUPS["us_military"])
    return [(f"{fields['LAST']},{fields['FIRST']} {fields['i']}", "name")]


def _slot_address(ctx: _Context) -> list[Part]:
    return _format(ctx, _ADDRESSES, {}, "address")


_CITY_COUNTRY_FORMATS = (
    "[[{city}]], [[{country}]]",
    "[[{city}]] in [[{country}]]",
    "[[{country}]] ([[{city}]])",
)


def _slot_city_country(ctx: _Context) -> list[Part]:
    city, country = ctx.rng.choice(_CITIES)
    return _format(ctx, _CITY_COUNTRY_FORMATS, {"city": city, "country": country}, "geo")


def _slot_region_country(ctx: _Context) -> list[Part]:
    region, country = ctx.rng.choice(_REGIONS)
    return [(region, "geo"), (", ", None), (country, "geo")]


def _geo(options: Sequence[str]) -> _Slot:
    def fill(ctx: _Context) -> list[Part]:
        return [(ctx.rng.choice(options), "geo")]

    return fill


def _slot_institution(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(_INSTITUTIONS), "institution")]


# ---------------------------------------------------------------------------------------------
# Look-alikes: scores, stages, codes, doses, devices and numbers a scrubber may take for an
# identifier, and words that are also place names ("Berlin definition", "Bethesda category").


def _one_of(options: Sequence[str]) -> _Slot:
    return _plain(lambda rng: rng.choice(options))


def _lab(rng: random.Random) -> str:
    return rng.choice(
        (
            f"Hb {rng.randint(70, 140) / 10:.1f}",
            f"CRP {rng.randint(5, 300)}",
            f"WBC {rng.randint(30, 250) / 10:.1f}",
            f"pH 7.{rng.randint(18, 45)}",
            f"INR {rng.randint(10, 30) / 10:.1f}",
            f"NT-proBNP {rng.randint(300, 9000)} pg/mL",
            f"procalcitonin {rng.randint(1, 90) / 10:.1f} ng/mL",
            f"D-dimer {rng.randint(5, 60) / 10:.1f} mg/L FEU",
            f"eGFR {rng.randint(15, 90)}",
            f"lactate {rng.randint(10, 60) / 10:.1f}",
        )
    )


def _exposure(rng: random.Random) -> str:
    """A radiograph's exposure record."""
    kvp, mas = rng.choice((90, 100, 110, 120, 125)), rng.choice(("1.6", "2.5", "3.2", "4"))
    return rng.choice(
        (
            f"{kvp} kVp, {mas} mAs",
            f"kVp {kvp}, {mas} mAs",
            f"DAP {rng.randint(2, 30) / 100:.2f} Gy·cm²",
            f"EI {rng.randint(200, 1800)}, SID 180 cm",
        )
    )


def _ct_dose(rng: random.Random) -> str:
    return rng.choice(
        (
            f"CTDIvol {rng.randint(15, 90) / 10:.1f} mGy, DLP {rng.randint(60, 400)} mGy·cm",
            f"120 kVp, {rng.choice((40, 60, 100))} mAs, DLP {rng.randint(60, 400)} mGy·cm",
        )
    )


def _series(rng: random.Random) -> str:
    series, image = rng.randint(2, 9), rng.randint(12, 240)
    return rng.choice(
        (f"series {series}, image {image}", f"Se {series}/Im {image}", f"se/im {series}/{image}")
    )


def _cycle(rng: random.Random) -> str:
    return rng.choice(
        (
            f"C{rng.randint(1, 8)}D{rng.choice((1, 8, 15))}",
            f"D+{rng.randint(5, 100)}",
            f"POD {rng.randint(1, 9)}",
        )
    )


def _bed(rng: random.Random) -> str:
    return rng.choice(
        (
            f"Bed {rng.randint(1, 40)}",
            f"Box {rng.randint(1, 20)}",
            f"Bay {rng.randint(1, 8)}",
            f"Room {rng.randint(1, 9)}.{rng.randint(1, 40):02d}",
            f"Pod {rng.choice('ABCD')}",
        )
    )


_LOOKALIKES: dict[str, _Slot] = {
    "birads": _one_of(("BI-RADS 2", "BI-RADS 3", "BI-RADS 4A", "BI-RADS 4B", "BI-RADS 5")),
    "tnm": _one_of(("T2N0M0", "cT3N1M0", "pT1bN0M0", "ypT2N1a", "T4N2M1c", "cT1cN0M0")),
    "bosniak": _one_of(("Bosniak I", "Bosniak II", "Bosniak IIF", "Bosniak III", "Bosniak IV")),
    "vent": _plain(lambda rng: f"FiO2 0.{rng.randint(3, 8)}, PEEP {rng.choice((5, 8, 10, 12))}"),
    "sats": _plain(lambda rng: f"SpO2 {rng.randint(85, 98)}%"),
    "labs": _plain(_lab),
    "dose": _one_of(
        _entries(
            """amoxicillin 500 mg tds; piperacillin-tazobactam 4.5 g q8h;
            enoxaparin 40 mg s.c. daily; prednisolone 30 mg od; furosemide 40 mg IV bd;
            ceftriaxone 2 g IV; levofloxacin 750 mg; isoniazid 300 mg; meropenem 1 g q8h;
            osimertinib 80 mg"""
        )
    ),
    "cardiac_device": _one_of(
        _entries(
            """Medtronic Azure XT DR MRI SureScan; Boston Scientific Accolade MRI;
            Abbott Assurity MRI; Biotronik Edora 8 DR-T; Medtronic Evera MRI XT VR ICD;
            St. Jude Ellipse VR"""
        )
    ),
    "catheter": _one_of(("Mediport", "Groshong catheter", "Quinton dialysis catheter")),
    "tube": _one_of(
        _entries(
            """Ryles tube; NG tube; Minnesota tube; Sengstaken-Blakemore tube;
            Shiley 8 tracheostomy tube"""
        )
    ),
    "xray_unit": _one_of(
        _entries(
            """Philips DigitalDiagnost C90; Siemens Ysio Max; Carestream DRX-Revolution;
            Fujifilm FDR Go PLUS; GE AMX Navigate; Shimadzu MobileDaRt Evolution MX8"""
        )
    ),
    "exposure": _plain(_exposure),
    "ct_dose": _plain(_ct_dose),
    "severity": _one_of(("CURB-65 score 3", "qSOFA 2", "APACHE II 18", "PSI class IV")),
    "performance": _one_of(("ECOG 1", "ECOG 2", "WHO performance status 1", "Karnofsky 70%")),
    "code": _one_of(
        _entries(
            """ICD-10 J18.9; ICD-10 J44.1; ICD-10 C34.1; CPT 71046; CPT 71045; LOINC 36643-5;
            SNOMED CT 233604007"""
        )
    ),
    "series": _plain(_series),
    "cycle": _plain(_cycle),
    "hu": _plain(lambda rng: f"-{rng.randint(60, 120)} HU"),
    "bed": _plain(_bed),
    "age_band": _one_of(("90 or older", "≥90", "in her nineties", "nonagenarian")),
}

SLOTS: dict[str, _Slot] = {
    # identifiers
    "date": _slot_date,
    "month_year": _slot_month_year,
    "day": _slot_day,
    "dob": _slot_dob,
    "hijri": _slot_hijri,
    "stamp": _slot_stamp,
    "time": _slot_time,
    "phone": _slot_phone,
    "pager": _slot_pager,
    "ext": _slot_extension,
    "email": _slot_email,
    "mrn": _slot_id("mrn"),
    "acc": _slot_id("acc"),
    "order": _slot_id("order"),
    "bare_id": _slot_id("bare"),
    "natid": _slot_id("natid"),
    "insurance": _slot_id("insurance"),
    "vet_id": _slot_id("veteran"),
    "provider_id": _slot_id("provider"),
    "age_adj": _slot_age("adj", identifier=True),
    "age_paren": _slot_age("paren", identifier=True),
    "age_pred": _slot_age("pred", identifier=True),
    "age_sex": _slot_age("sex", identifier=True),
    "age_dob": _slot_dob_with_age(identifier=True),
    "dr": _slot_name("doctor"),
    "signature": _slot_name("signature"),
    "patient": _slot_name("patient"),
    "person": _slot_name("person"),
    "patient_so": _slot_patient_with_parent,
    "surname": _slot_surname,
    "initials": _slot_signoff,
    "address": _slot_address,
    "city": _geo([city for city, _ in _CITIES]),
    "city_country": _slot_city_country,
    "country": _geo(VOCABULARY.countries),
    "region_country": _slot_region_country,
    "district": _geo(_DISTRICTS),
    "town": _geo((*_TOWNS, *(town for town, _ in _US_TOWNS))),
    "us_state": _geo([state for state, _ in _US_STATES]),
    "deployment": _geo(("Kuwait", "Bahrain", "KSA", "UAE", "South Korea", "Greenland")),
    "institution": _slot_institution,
    # look-alikes, never identifiers
    "young_adj": _slot_age("adj", identifier=False),
    "young_paren": _slot_age("paren", identifier=False),
    "young_pred": _slot_age("pred", identifier=False),
    "young_sex": _slot_age("sex", identifier=False),
    "young_dob": _slot_dob_with_age(identifier=False),  # the date of birth is still a date
    **{
        name: _SLOTS[name]
        for name in _words("year side lobe dims cm mm level disc rib fr pct frac ratio deg")
    },
    **_LOOKALIKES,
}
SLOT_CATEGORIES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("date", "month_year", "day", "dob", "young_dob"), ("date",)),
    "hijri": ("date", "date"),
    "stamp": ("date", "time"),
    "time": ("time",),
    **dict.fromkeys(("phone", "pager", "ext"), ("phone",)),
    "email": ("email",),
    **dict.fromkeys(
        ("mrn", "acc", "order", "bare_id", "natid", "insurance", "vet_id", "provider_id"), ("id",)
    ),
    **dict.fromkeys(("age_adj", "age_paren", "age_pred", "age_sex"), ("age",)),
    "age_dob": ("date", "age"),
    **dict.fromkeys(("dr", "signature", "patient", "person", "surname", "initials"), ("name",)),
    "patient_so": ("name", "name"),
    "address": ("address",),
    **dict.fromkeys(("city", "country", "district", "town", "us_state", "deployment"), ("geo",)),
    **dict.fromkeys(("city_country", "region_country"), ("geo", "geo")),
    "institution": ("institution",),
}

# ---------------------------------------------------------------------------------------------
# Sentence templates (role, text) and prose, none shared with the other splits.

PHI_TEMPLATES: tuple[tuple[str, str], ...] = (
    # date
    ("header", "Examination performed: {date}"),
    ("header", "Order date {date}   Scheduled {date}"),
    ("header", "Date (Gregorian/Hijri): {hijri}"),
    ("header", "Study date/time: {stamp}"),
    ("comparison", "Prior chest film {date} at {institution}: same configuration of the wires."),
    ("comparison", "CT thorax of {date} used as the reference."),
    ("comparison", "In comparison to the radiograph from {date}, the drain is withdrawn by 3 cm."),
    ("comparison", "Baseline staging CT {month_year} ({tnm})."),
    ("history", "Thoracotomy {date}; persistent air leak."),
    ("history", "Presented via the emergency department {date} with {labs}."),
    ("history", "Last chemotherapy {month_year}, now {cycle} of the next line."),
    ("history", "SARS-CoV-2 PCR positive {date}, ventilated since."),
    ("history", "Returned from pilgrimage {date}; fever and cough, ?MERS-CoV."),
    ("history", "Seen in the chest clinic on {day}; imaged the same day."),
    ("findings", "Since {date} the {side} effusion has almost completely resolved."),
    ("findings", "Clips from the lobectomy of {month_year} at the {side} hilum."),
    ("impression", "Control radiograph advised around {date}."),
    ("impression", "Stable since {date}; no further imaging needed for this finding."),
    ("footer", "Dictated {date} / typed {date}"),
    ("footer", "Validated {stamp}"),
    ("addendum", "Tele-reporting addendum {stamp}: day-team review concurs with the prelim."),
    ("addendum", "Addendum {date}: outside CT received, nodule unchanged over two years."),
    # time
    ("header", "Time of acquisition: {time}"),
    ("header", "Received {time}, reported {time}"),
    ("impression", "Called through to the ward at {time}."),
    ("findings", "On the repeat exposure at {time} the NG tube has been advanced."),
    ("history", "Fall at home at {time}, found by the home-care nurse."),
    ("footer", "Preliminary read sent {time}; final read {time}."),
    ("impression", "Critical result phoned to {dr} at {time}, read back and confirmed."),
    ("footer", "Read remotely at {time} by the overnight service."),
    # phone
    ("footer", "Radiology front desk: {phone}"),
    ("footer", "Questions about this report: {phone} or {pager}."),
    ("history", "Wife can be reached on {phone}."),
    ("header", "Ordering unit tel. {phone}"),
    ("footer", "Night teleradiology hotline {phone}"),
    ("impression", "Please contact the reporting radiologist, {ext}."),
    ("header", "Fax {phone}"),
    ("copy", "Copy faxed to {phone}."),
    ("footer", "Appointments {phone} (Sun-Thu)"),
    # email
    ("footer", "Corrections to {email}, please."),
    ("header", "Ordering physician e-mail: {email}"),
    ("copy", "Copy sent to {email}."),
    ("history", "Images requested by the patient's daughter ({email})."),
    ("footer", "Teleradiology support: {email}"),
    ("footer", "Questions: {email} / {phone}"),
    # id
    ("header", "Placer order: {order}"),
    ("header", "Pat.-Nr.: {mrn}"),
    ("header", "Fallnummer: {bare_id}"),
    ("header", "Requisition: {acc}"),
    ("header", "{natid}"),
    ("header", "Karte No. {mrn}"),
    ("header", "HN {mrn}   Visit {bare_id}"),
    ("header", "Payer: {insurance}"),
    ("header", "{vet_id}"),
    ("history", "Identity checked against {natid} at admission."),
    ("comparison", "See the prior requisition {acc}."),
    ("footer", "Report ID {bare_id}"),
    ("footer", "Reporting physician {provider_id}"),
    ("history", "Referral letter quotes {vet_id}."),
    # age
    ("history", "{age_adj} nursing-home resident, fever and confusion."),
    ("history", "{age_adj} veteran, COPD, 60 pack-years."),
    ("header", "Sex/Age: {age_sex}"),
    ("history", "Woman {age_paren} with acute dyspnoea at rest."),
    ("history", "Man {age_paren}, long lie after a fall."),
    ("history", "{age_pred}, bedbound, high aspiration risk."),
    ("header", "Born {age_dob}"),
    ("history", "{age_adj} on {dose}; no better after 48 h."),
    # name
    ("header", "Name of patient: {patient}"),
    ("header", "Pt.: {patient}"),
    ("header", "Patient: {patient_so}"),
    ("header", "Referring physician: {dr}"),
    ("footer", "Reporting radiologist: {signature}"),
    ("footer", "Technologist: {person}"),
    ("footer", "Transcribed by {person}"),
    ("copy", "cc {dr}"),
    ("footer", "/{initials}"),
    ("history", "Known to {dr}'s team; ?lymphangitis."),
    ("impression", "Discussed with the on-call physician, {dr}, at {time}."),
    ("footer", "Preliminary read: {signature}. Final read: {signature}."),
    ("history", "Accompanied by her son, {person}."),
    ("impression", "Findings relayed to Sister {surname} on the ward."),
    ("footer", "Senior physician: {dr}"),
    ("footer", "Attending of record: {dr}"),
    # address
    ("header", "Residence: {address}"),
    ("header", "Mailing address: {address}"),
    ("history", "Lives with his daughter at {address}, no lift."),
    ("copy", "Hard copy mailed to {address}."),
    ("history", "Found collapsed outside {address}."),
    # geo
    ("history", "Expatriate worker from {city_country}, pre-employment screening."),
    ("history", "Returned from {city} three days ago with fever."),
    ("history", "Lives in {district}; works in a textile mill."),
    ("history", "Teleconsult requested by the clinic in {town}."),
    ("history", "Deployed to {deployment} in {year}; burn-pit exposure."),
    ("history", "Evacuated from {town} by air ambulance."),
    ("history", "Came from {region_country} on a medical visa."),
    ("footer", "Read remotely from {city_country}."),
    ("history", "Veteran, moved to {us_state} last year; establishing care."),
    ("history", "Cough since arriving from {country}; contact of a TB case."),
    ("history", "Works at the airport in {city}."),
    # institution
    ("header", "Ordering facility: {institution}"),
    ("comparison", "Outside images from {institution} imported into PACS."),
    ("history", "Transferred from {institution} ICU."),
    ("impression", "Referral to the thoracic surgeons at {institution} suggested."),
    ("footer", "Read for {institution} under the teleradiology contract."),
    ("header", "{institution} | Department of Diagnostic and Interventional Radiology"),
    ("findings", "Port placed at {institution}, tip at the cavo-atrial junction."),
)

PROSE: dict[str, tuple[str, ...]] = {
    "header": (
        "Procedure: XR CHEST 2 VIEWS ({code})",
        "Modality/Station: DX / {xray_unit}",
        "Priority: STAT",
        "Patient class: outpatient",
        "Location: {bed}",
        "Diagnosis code: {code}",
        "Exposure data: {exposure}",
        "Read type: preliminary (teleradiology)",
        "Report translated from the original language",
        "Age group: {age_band}",
    ),
    "history": (
        "S/P right upper lobectomy, {cycle}.",
        "Fever and productive cough; {labs}.",
        "Ventilated on {vent}; desaturating to {sats}.",
        "On {dose} for community-acquired pneumonia.",
        "Heart failure, NYHA class III, EF 30%.",
        "Cirrhosis, Child-Pugh B; ?hepatic hydrothorax.",
        "Pleuritic pain, Wells score 4.5; mMRC grade 2 at baseline.",
        "{performance}. Restaging of {tnm} adenocarcinoma.",
        "{cycle} of docetaxel, neutropenic fever.",
        "Post CABG, new desaturation.",
        "Pre-employment medical; asymptomatic.",
        "Contact tracing for TB, IGRA positive.",
        "Burn-pit exposure during deployment; chronic cough.",
        "Agent Orange exposure; nodule surveillance.",
        "Sickle cell disease with chest pain, ?acute chest syndrome.",
        "Stroke; check of the {tube} position.",
        "{young_adj} ex-smoker, 30 pack-years.",
        "Known Ann Arbor stage IIB Hodgkin lymphoma, restaging.",
    ),
    "technique": (
        "Radiograph of the thorax in two planes.",
        "Bedside AP exposure, patient supine, {exposure}.",
        "Single frontal projection on the {xray_unit}.",
        "PA view in deep inspiration; lateral declined by the patient.",
        "Low-dose CT thorax, {ct_dose}.",
        "Supine chest; horizontal-beam lateral not obtained.",
    ),
    "comparison": (
        "No previous examinations available for comparison.",
        "The night service's preliminary read was taken into account.",
        "External CT from {year}, images only, no report.",
        "Earlier images are in another PACS and were not reviewed.",
        "No reference images.",
    ),
    "findings": (
        "ET tube {cm} cm above the carina, cuff not overdistended.",
        "{cardiac_device} generator in the left infraclavicular pocket, leads in the RA and RV.",
        "Septal (Kerley B) lines at both costophrenic angles with small bilateral effusions.",
        "Swan-Ganz catheter tip in the {side} interlobar artery; withdraw by 2 cm.",
        "Cook Celect IVC filter below the renal veins in the included abdomen.",
        "Pleural-based wedge opacity at the {side} base (Hampton hump), distal oligaemia "
        "(Westermark sign).",
        "Apical mass eroding the {rib} (Pancoast tumour), {dims}.",
        "{bosniak} cyst of the upper pole of the {side} kidney in the included abdomen.",
        "Staging {tnm} per the AJCC 8th edition.",
        "Diffuse bilateral opacities on {vent}, meeting the Berlin definition of ARDS.",
        "{mm} ground-glass nodule in the {lobe} ({series}).",
        "Calcified Caplan nodules in a coal miner.",
        "Tracheal diameter 32 mm, Mounier-Kuhn appearance.",
        "Retrocardiac air-fluid level from a hiatus hernia; no Bochdalek defect.",
        "Schmorl nodes at {disc}; Scheuermann-type wedging of the mid thoracic spine.",
        "Flowing anterior osteophytes over four levels (DISH, Forestier).",
        "Aberrant right subclavian artery from a Kommerell diverticulum.",
        "Dextrocardia with bronchiectasis, ?Kartagener syndrome.",
        "Pneumomediastinum after forceful vomiting, ?Boerhaave.",
        "Bilateral hilar lymphadenopathy, ?Löfgren syndrome.",
        "Fat-density lesion ({hu}) at the {side} base, a lipoma.",
        "Cardiothoracic ratio {ratio}; mediastinum not widened.",
        "Costophrenic sinuses free on both sides.",
        "No pulmonary congestion, no infiltrates.",
        "Status post sternotomy (S/P CABG), cerclage wires intact.",
        "Fracture of the {rib} with a {mm} step.",
        "Tracheostomy cannula midline, tip {cm} cm above the carina.",
        "Ground-glass nodule {mm}, follow up per Fleischner 2017.",
        "{catheter} via the {side} subclavian vein.",
        "Thyroid nodule with Bethesda category III cytology, unchanged.",
        "Gallbladder distension; Tokyo Guidelines grade I cholecystitis not excluded.",
        "Mediastinal mass {dims}, smaller; Lugano classification response to follow on PET-CT.",
        "Collapse of about {pct} of the {side} lung.",
        "Loss of height of {level}, {frac} of the anterior column.",
        "{fr} Fr pigtail drain at the {side} base.",
    ),
    "impression": (
        "Unremarkable chest radiograph for age.",
        "No pneumothorax after the procedure.",
        "{bosniak} lesion: follow-up ultrasound suggested.",
        "Incidental breast nodule on the CT; mammography advised ({birads}).",
        "Findings compatible with moderate ARDS (Berlin definition).",
        "Pneumonia, {severity} per the clinical team.",
        "CT pulmonary angiography recommended (revised Geneva score 6).",
        "Progression by RECIST 1.1: target sum up by {pct}.",
        "Tubes and lines as above, no complication.",
        "Thymoma, WHO type B2, resected; no recurrence.",
    ),
    "footer": (
        "Electronically validated.",
        "Report generated by the RIS; do not reply.",
        "Read under a teleradiology service agreement; the on-site team remains responsible "
        "for clinical decisions.",
        "Translation of the original report; the original prevails.",
        "Preliminary read - final report to follow.",
        "Speech recognition used; minor errors possible.",
    ),
    "addendum": (
        "Tele-reporting addendum: on day-team review the {side} apical line is a skin fold.",
        "ADDENDUM: comparison images now available; nodule stable since {year}.",
        "Addendum after the MDT: agree with {tnm}.",
    ),
    "copy": (
        "cc: ordering ward; tumour board",
        "Copy: medical records",
        "cc: {bed}",
    ),
}

# Section labels, written by each layout its own way ("[Findings]", "Judgement:").
_LABELS = {
    "history": (
        "Indication for examination",
        "Referral question",
        "Anamnesis",
        "Reason for exam",
        "Clinical data",
    ),
    "technique": ("Method", "Acquisition", "Views obtained", "Procedure performed"),
    "comparison": ("Previous examinations", "Prior studies", "Reference", "Comparison studies"),
    "findings": (
        "Report",
        "Image findings",
        "Radiological findings",
        "Findings and interpretation",
    ),
    "impression": ("Judgement", "Evaluation", "Key findings", "Final impression", "Diagnosis"),
}

# ---------------------------------------------------------------------------------------------
# Layouts: each takes the rendered sentences by role and writes the note's lines.

_Sentences = dict[str, list[list[Part]]]


def _label(ctx: _Context, role: str) -> str:
    return ctx.rng.choice(_LABELS[role])


def _body(ctx: _Context, sentences: _Sentences, style: Callable[[str], str]) -> _Lines:
    """One line per body section: its label written by `style`, then its sentences."""
    return [
        [(style(_label(ctx, role)), None), *_join(sentences[role], " ")]
        for role in _BODY_ROLES
        if sentences[role]
    ]


def _aligned(line: list[Part], width: int) -> list[Part]:
    """'Key: value' written as a fixed-width key column, as RIS exports print header fields."""
    text, category = line[0]
    key, colon, rest = text.partition(":")
    if category is not None or not colon or len(key) > width:
        return line
    return [(f"{key.strip():<{width}}:{rest}", None), *line[1:]]


def _layout_ris_export(ctx: _Context, sentences: _Sentences) -> _Lines:
    """A structured RIS export: aligned 'Key : value' fields, the report between rules, one
    sentence a line, and the report status last."""
    rng = ctx.rng
    banner = rng.choice(("RIS EXPORT", "== Radiology Information System: report ==", "[RIS]"))
    lines: _Lines = [[(banner, None)], *(_aligned(line, 20) for line in sentences["header"])]
    lines.append([("-" * 48, None)])
    for role in _BODY_ROLES:
        if sentences[role]:
            lines.append([(f"{_label(ctx, role)}:", None)])
            lines.extend([("  ", None), *sentence] for sentence in sentences[role])
    status = rng.choice(("F (final)", "P (preliminary)", "C (corrected)"))
    lines.extend([[("-" * 48, None)], [(f"{'Report status':<20}: {status}", None)]])
    return [*lines, *_closing(sentences)]


def _layout_hl7(ctx: _Context, sentences: _Sentences) -> _Lines:
    """An HL7 v2 ORU message: MSH, PID, PV1 and OBR segments with their own identifiers, header
    fields as NTE notes and every report line as an OBX text segment."""
    rng = ctx.rng
    lines: _Lines = [
        [
            ("MSH|^~\\&|RIS|RAD|HIS|WARD|", None),
            *_slot_hl7_stamp(ctx),
            ("||ORU^R01|", None),
            *_slot_message_id(ctx),
            ("|P|2.3.1", None),
        ],
        [
            ("PID|1||", None),
            *SLOTS["mrn"](ctx),
            ("^^^^MR||", None),
            *_slot_hl7_name(ctx),
            ("||", None),
            *_slot_hl7_dob(ctx),
            (f"|{rng.choice('MF')}", None),
        ],
        [(f"PV1|1|I|{_bed(rng)}", None)],
        [
            ("OBR|1|", None),
            *SLOTS["order"](ctx),
            ("|", None),
            *SLOTS["acc"](ctx),
            ("|71046^XR CHEST 2 VIEWS|||", None),
            *_slot_hl7_stamp(ctx),
            ("|||||||||", None),
            *_slot_provider_code(ctx),
            ("^", None),
            *_slot_hl7_name(ctx),
        ],
    ]
    lines.extend([(f"NTE|{i}||", None), *s] for i, s in enumerate(sentences["header"], 1))
    report: _Lines = []
    for role in _BODY_ROLES:
        if sentences[role]:
            report.append([(_label(ctx, role).upper() + ":", None)])
            report.extend(sentences[role])
    report.extend(_closing(sentences))
    lines.extend(
        [(f"OBX|{i}|TX|&GDT^Report||", None), *s, ("||||||F", None)]
        for i, s in enumerate(report, 1)
    )
    return lines


def _sender(ctx: _Context) -> tuple[list[Part], list[Part]]:
    """An e-mail sender's name (as the mail client shows it) and address."""
    person = _person_fields(ctx.rng, ctx.rng.choice(_GROUPS))
    name = ctx.rng.choice(
        (f"{person['last']}, {person['first']}", f"{person['first']} {person['last']}")
    )
    return [(name, "name")], [(_email(ctx.rng, person), "email")]


def _layout_forwarded(ctx: _Context, sentences: _Sentences) -> _Lines:
    """A report pasted into a forwarded e-mail, under the mail client's header block."""
    rng = ctx.rng
    name, address = _sender(ctx)
    subject = rng.choice(("RE: CXR result", "FW: urgent finding", "Report for the MDT"))
    if rng.random() < 0.5:
        lines: _Lines = [
            [("-----Original Message-----", None)],
            [("From: ", None), *name, (" <", None), *address, (">", None)],
            [
                ("Sent: ", None),
                *_stamp(ctx, (("{weekday}, {d} {month} {yyyy}", " ", "{HH}:{MM}"),)),
            ],
            [("To: Radiology Reporting", None)],
            [(f"Subject: {subject}", None)],
        ]
    else:
        lines = [
            [("---------- Forwarded message ---------", None)],
            [("From: ", None), *name, (" <", None), *address, (">", None)],
            [
                ("Date: ", None),
                *_stamp(ctx, (("{wkd}, {Mon} {d}, {yyyy}", " at ", "{h}:{MM} {AP}"),)),
            ],
            [(f"Subject: {subject}", None)],
            [("To: <", None), *_slot_email(ctx), (">", None)],
        ]
    intro = rng.choice(("Please see the report below.", "FYI - report as issued:", "See below."))
    lines.extend([[("", None)], [(intro, None)], [("", None)], *sentences["header"]])
    lines.extend(_body(ctx, sentences, lambda label: f"{label}: "))
    return [*lines, *_closing(sentences)]


def _layout_vista(ctx: _Context, sentences: _Sentences) -> _Lines:
    """A VA VistA radiology print: exam time stamp, requesting physician, case line, then the
    sections under their own headings, indented."""
    rng = ctx.rng
    location = rng.choice(("ER", "3 WEST MED", "SICU", "PRIMARY CARE", "CLC"))
    lines: _Lines = [
        [("Exm Date: ", None), *_stamp(ctx, (("{MON} {dd}, {yyyy}", "@", "{HH}:{MM}"),))],
        [("Req Phys: ", None), *_slot_vista_name(ctx), (f"      Pat Loc: {location}", None)],
        [("", None)],
        [("(Case ", None), *_slot_case_id(ctx), (" COMPLETE) CHEST 2 VIEWS PA&LAT", None)],
        *sentences["header"],
    ]
    for role, heading in (
        ("history", "Clinical History:"),
        ("technique", "Proc Modifiers:"),
        ("comparison", "Comparison:"),
        ("findings", "Report:"),
        ("impression", "Impression:"),
    ):
        if sentences[role]:
            lines.append([(heading, None)])
            lines.extend([("  ", None), *s] for s in sentences[role])
    code = rng.choice(("NORMAL", "MINOR ABNORMALITY", "ABNORMALITY, ATTN. NEEDED"))
    lines.append([(f"Primary Diagnostic Code: {code}", None)])
    return [*lines, *_closing(sentences)]


def _layout_bracketed(ctx: _Context, sentences: _Sentences) -> _Lines:
    """An East Asian RIS print: header fields two to a line, bracketed labels, numbered findings
    and conclusions."""
    header = sentences["header"]
    lines: _Lines = [_join(header[i : i + 2], " / ") for i in range(0, len(header), 2)]
    for role in _BODY_ROLES:
        if not sentences[role]:
            continue
        lines.append([(f"[{_label(ctx, role)}]", None)])
        if role in ("findings", "impression"):
            lines.extend([(f"{i}) ", None), *s] for i, s in enumerate(sentences[role], 1))
        else:
            lines.append(_join(sentences[role], " "))
    return [*lines, *_closing(sentences)]


_TELERAD_BANNERS = (
    "*** PRELIMINARY REPORT - TELERADIOLOGY ***",
    "REMOTE READ (night service) - PRELIMINARY",
    "Teleradiology - final report",
)


def _layout_telerad(ctx: _Context, sentences: _Sentences) -> _Lines:
    """A teleradiology read: a banner with the read type, capital labels, and the service's
    disclaimer under the report."""
    lines: _Lines = [[(ctx.rng.choice(_TELERAD_BANNERS), None)], *sentences["header"]]
    lines.extend(_body(ctx, sentences, lambda label: f"{label.upper()}: "))
    lines.append([("Images were reviewed on a diagnostic workstation at the reading site.", None)])
    return [*lines, *_closing(sentences)]


def _layout_continental(ctx: _Context, sentences: _Sentences) -> _Lines:
    """A European department's report in English: department line, labelled paragraphs between
    blank lines, 'Kind regards' above the signature."""
    department = ctx.rng.choice(
        (
            "Department of Radiology and Nuclear Medicine",
            "Institute of Diagnostic and Interventional Radiology",
            "Section of Thoracic Imaging",
        )
    )
    lines: _Lines = [[(department, None)], *sentences["header"]]
    for line in _body(ctx, sentences, lambda label: f"{label}:\n"):
        lines.extend([[("", None)], line])
    closing = ctx.rng.choice(("Kind regards,", "With collegial greetings,", "Best regards,"))
    return [*lines, [("", None)], [(closing, None)], *_closing(sentences)]


def _layout_letter(ctx: _Context, sentences: _Sentences) -> _Lines:
    """A reporting letter to the referrer: a salutation, the report as prose, a valediction."""
    rng = ctx.rng
    if rng.random() < 0.6:
        salutation: list[Part] = [("Dear ", None), *SLOTS["person"](ctx), (",", None)]
    else:
        salutation = [("Dear Colleague,", None)]
    prose = [
        s for role in ("history", "technique", "comparison", "findings") for s in sentences[role]
    ]
    lines: _Lines = [*sentences["header"], [("", None)], salutation, [("", None)]]
    lines.append([("Thank you for referring this patient. ", None), *_join(prose, " ")])
    if sentences["impression"]:
        lines.append([("In summary: ", None), *_join(sentences["impression"], " ")])
    valediction = rng.choice(("Yours sincerely,", "With best wishes,", "Yours faithfully,"))
    return [*lines, [("", None)], [(valediction, None)], *_closing(sentences)]


LAYOUTS: dict[str, tuple[float, _Layout]] = {
    "ris_export": (0.18, _layout_ris_export),
    "hl7": (0.07, _layout_hl7),
    "forwarded": (0.10, _layout_forwarded),
    "vista": (0.10, _layout_vista),
    "bracketed": (0.15, _layout_bracketed),
    "telerad": (0.14, _layout_telerad),
    "continental": (0.14, _layout_continental),
    "letter": (0.12, _layout_letter),
}
