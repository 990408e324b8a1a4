"""A labelled PHI test set: synthetic chest radiograph reports with every planted identifier's span.

A text scrubber is only as good as its measured recall and precision per category, and those
numbers mean little when the rules were tuned on the very notes they are scored on. This module
writes radiology-style notes (findings, lines and tubes, measurements, section headers, some in
all capitals) into which it plants identifiers through sentence templates, and records the
character span and category of each one. The notes also carry the look-alikes a naive scrubber
hits: measurements, vertebral levels, fractions, bare years, ages of 89 and under, eponyms,
"XXXX" placeholders, and capitalised words that are also place names.

Four splits, "dev", "test", "holdout" and "holdout2", share no sentence template and no vocabulary
entry: first names, surnames, cities, countries, regions, US states, towns, hospitals, streets,
e-mail domains, telephone area codes and dialling codes, identifier cue words and prefixes, name
titles and credentials are drawn from separate lists (`split_vocabulary`;
`SplitVocabulary.proper_noun_tokens` lists the proper-noun words, which are disjoint between the
splits once generic words such as "Hospital", "Street" or "van" and single letters are set
aside). Every split covers every category; dev, test and holdout also cover every format family
(for example, day-month dates without a year), each written with split-specific variants where
more than one exists (dev "14th of March", test "the 28th of March", holdout "4th Feb"; dev month
abbreviations "Sep", test "Sept.", holdout "Sept"), while holdout2 mostly writes families of its
own.
Rules were tuned on "dev" and first reported on "test".

"holdout" was written after both "dev" and "test" had been used to adjust the scrubber's rules, so
it is the split to report on now: its templates, prose, section labels and note layouts are new, not
paraphrases. Its notes imitate how different hospitals and countries write (a US academic centre
with numbered impressions, UK NHS and discharge-summary header blocks, telegraphic notes, dictated
notes with their artefacts, Australian, Indian, South African, Canadian, Irish, Singaporean,
Nigerian and Filipino conventions), with signature blocks, addenda and "cc:" lines; its
identifiers add their own format families (weekdays in dates, RIS time stamps, dates of birth with
an age, trunk-prefixed and free-call telephone numbers, national identity and insurance numbers,
PO boxes and Indian, Canadian, Irish, South African, Nigerian, Filipino and Malaysian addresses),
and its look-alikes add drug and device names, "Grade 3", "Zone 2", "Ward 7B", "ICU", "A&E",
"Lung-RADS 4A", "QTc 460 ms", observations such as "BP 142/88" and "GCS 14/15", durations such as
"3/52", and the HIPAA age band ">90".

"holdout2" was written without sight of the scrubber's rules, its tests or its measured figures,
and scored once before the rules were fixed on it (docs/reports.md gives both figures). Its vocabulary, formats,
templates and layouts live in `medrep.data.phi_holdout2`. Its notes imitate the places and systems
the other splits leave out: English-language reports from the Netherlands, Germany, Switzerland,
Scandinavia, Israel, the Gulf states, Hong Kong, Japan, South Korea, Taiwan, New Zealand, Kenya,
Pakistan, Brazil and Mexico and from US military and veterans' hospitals, laid out as structured RIS
exports with aligned "Key : value" fields, HL7 v2 messages (PID, OBR and OBX segments), reports
forwarded by e-mail under the mail client's header, VA VistA prints, East Asian RIS prints with
bracketed labels and numbered findings, teleradiology reads with tele-reporting addenda, European
department reports and reporting letters ("Dear Dr ..."). Names follow each tradition's own order
(surname first, patronymics, Dutch sorted particles, paternal and maternal surnames). Its
identifiers add their own format families (Roman-numeral months, Japanese era and Taiwanese ROC
years, Hijri dates beside Gregorian ones, ISO, VistA and HL7 time stamps, dates in words; "14u30",
"kl. 14.30" and times with a zone; Gulf, East Asian, European, New Zealand, Kenyan, Pakistani,
Brazilian and DSN telephone numbers; NHI, HKID, Emirates ID, resident registration, BSN, CPR, AHV,
Iqama, CNIC, CURP and veterans' numbers; addresses of every one of those places, APO/FPO ones
included; districts, prefectures and emirates), and its look-alikes add "BI-RADS 4A", "Bosniak
IIF", "T2N0M0", "AJCC 8th edition", "FiO2 0.4, PEEP 8", laboratory values, drug doses, device
models ("Medtronic Azure XT DR MRI SureScan"), exposure data ("100 mAs"), "C3D8", "POD 3", ICD-10,
CPT and LOINC codes, series and image numbers, "S/P CABG", and place words that name no place
("Berlin definition", "revised Geneva score", "Bethesda category III", "Tokyo Guidelines",
"Lugano classification", "Ann Arbor stage IIB", "Agent Orange").

Span conventions (what a span covers):
- date: the whole date expression ("14th of March", "March 2021"), never a bare year.
- time: the clock value with its meridiem ("10:30 a.m.", "3 PM"); in "1430 hours" only "1430".
- phone: the number only; cue words ("pager", "ext.") are outside the span.
- email: the whole address.
- id: the identifier value only ("A1234567"), not its cue ("Accession #").
- age: the number only ("92" in "92-year-old", "ninety-two" in "ninety-two-year-old"), and only
  for ages over 89. Younger ages are planted too, unlabelled.
- name: the name tokens only ("Jane A. Smith" in "Dr. Jane A. Smith"; no title, no credential).
- address: the whole address, town, state and postcode included.
- geo: each place name on its own ("Lagos" and "Nigeria" in "Lagos, Nigeria").
- institution: the full name ("Royal Infirmary of Edinburgh"), without a leading "the".

Edge cases that only holdout plants, under the same conventions:
- date: a weekday belongs to the date ("Tue 4/3", "Tuesday, February 4, 2019"); a day of the
  month on its own is the date without "on the" or "inst." ("8th" in "on the 8th inst.", "Thu
  22nd" in "on Thu 22nd"); a time stamp is two spans ("04-Feb-2019" and "14:32:07" in
  "04-Feb-2019 14:32:07"); a date of birth with an age is a date span and, over 89, an age span
  ("16/10/1928" and "95" in "16/10/1928, 95 yrs"; under 90 the age is left unlabelled).
- time: "21h15", "9.30am", a bare "0930" ("at 0930"), and "09:30" in "09:30 hrs" (the unit
  outside, as with "1430 hours").
- phone: a country code or trunk prefix is part of the number ("+94 (0)81 234 5678",
  "(0)51 250 7021"); in "ext 4-2231" only "4-2231".
- id: a national identity or insurance number's cue stays outside ("Aadhaar", "PPSN",
  "Medicare", "OHIP"); a version code printed with the number is inside ("1234-567-890 AB").
- age: "93" in "F/93", "93y" and "93 y.o."; the HIPAA band for 90 and over (">90", "90+",
  "over 90") is the allowed aggregate and is planted unlabelled.
- name: initials are part of the name, before or after the surname ("C.T. Ogunleye",
  "MCALLISTER S.W."), and so are surname particles ("van Rooyen", "de la Fuente"); titles stay
  outside, parenthesised ones included ("Dr (Mrs)", "Sr").
- address: a PO box, locked bag or "P.M.B." with its town is an address; Indian, Filipino,
  Nigerian and Malaysian addresses include the flat, building, locality and state.
- institution: only the name in "Tygerberg Hospital Department of Medical Imaging".

Edge cases that only holdout2 plants, under the same conventions:
- date: a Roman month, a Japanese era year and a Taiwanese ROC year belong to the date
  ("04.II.2019", "H31.02.04", "108/02/04"); a date in words leaves out "the" ("fourth of
  February"); a Hijri date is a date span of its own, its era marker outside ("29/05/1440" in
  "29/05/1440 H"); an ISO or VistA time stamp is two spans ("2019-02-04" and "14:32" in
  "2019-02-04T14:32", "FEB 04, 2019" and "14:32" in "FEB 04, 2019@14:32"); an HL7 time stamp,
  date and time run together, is one date span ("201902041432").
- time: "14u30", "14h" and "2:30 in the afternoon" are whole (the period words are its meridiem); a
  time zone, a Zulu "Z" and "kl." stay outside ("14:32" in "14:32 GST", "1432" in "1432Z").
- phone: a number written without its area code is whole ("2855 3838"); "DSN" stays outside.
- id: a number whose digits hold a date of birth is one id span and no date ("850101-1234567",
  "784-1985-1234567-1", a CURP); an HKID's bracketed check digit is inside ("A123456(7)"); cues
  stay outside ("NHI", "BSN", "Pat.-Nr.", "Fallnummer", "SSN last 4:"), and so do HL7 component
  separators ("00-604-918-W" in "00-604-918-W^^^^MR"); the record numbers a layout prints (an HL7
  message control id, a VistA case number, a provider's code or registration number) are ids.
- age: "093" in "093Y", "93" in "aet. 93", "(93 y)", "93-years-old" and "93y 4m"; "90 or older",
  "≥90", "in her nineties" and "nonagenarian" are aggregates, planted unlabelled.
- name: an HL7 name field is one span, carets included ("VAN DIJK^JOOST"), as are a VistA name
  ("WHITLOCK,EARL R") and a Dutch sorted name ("Broek, J. van den"); "bin" and "bint" belong to
  the name ("Mohammed bin Rashid Al-Maktoum"); "S/O" and "D/O" stand outside between two name
  spans; a reader's initials are a name, their slash outside ("PvdB" in "/PvdB"); titles, ranks,
  corps and a possessive "'s" stay outside ("Dr. med.", "PD Dr. med.", "Docent", "Dra.", "Dhr.",
  "Mevr.", "Herr", "LTC", "MC, USA").
- address: the whole address in its country's order, with its flat, floor, block, estate, ward,
  district, rural delivery ("RD 4"), P.O. box or APO/FPO code, and its country where one is
  written ("P.O. Box 12345, Dubai, UAE").
- geo: a district's designator is part of its name ("Shibuya-ku", "Kiambu County", "Kanagawa
  Prefecture"); "USA" in the corps "MC, USA" is not a place and is left unlabelled.
- institution: the whole name, a town inside it included ("Universitätsspital Zürich").

Run `python -m medrep.data.phi_corpus --split holdout --n 600 --seed 0` for counts and examples.
"""

from __future__ import annotations

import argparse
import datetime
import random
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial

PHI_CATEGORIES = (
    "date",
    "phone",
    "email",
    "id",
    "age",
    "name",
    "address",
    "geo",
    "institution",
    "time",
)
SPLITS = ("dev", "test", "holdout", "holdout2")


@dataclass(frozen=True)
class PhiSpan:
    """One planted identifier: `text[start:end]` of its note, end exclusive."""

    start: int
    end: int
    category: str


@dataclass(frozen=True)
class PhiNote:
    """A synthetic report and the spans of every identifier planted in it (sorted, disjoint)."""

    text: str
    spans: tuple[PhiSpan, ...]
    template: str  # "<layout>:<template key>+<template key>...", for debugging


# A piece of note text and its category (None: not an identifier).
Part = tuple[str, str | None]


def _entries(text: str) -> tuple[str, ...]:
    """Entries of a ';'-separated list (kept as prose so the tables stay compact)."""
    return tuple(item.strip() for item in text.split(";") if item.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """'a/b; c/d' -> (('a', 'b'), ('c', 'd'))."""
    out = []
    for item in _entries(text):
        first, second = item.split("/")
        out.append((first.strip(), second.strip()))
    return tuple(out)


# Words shared by the splits' proper nouns that identify nothing on their own.
_GENERIC_WORDS = frozenset(
    _words(
        """hospital hospitals medical center centre clinic university general royal st saint regional
    community memorial teaching health sciences infirmary national city of and the de la van der
    women's children's north south east west new referral on al den complex flat apt unit rd ave
    dr street road way tower no"""
    )
)


@dataclass(frozen=True)
class SplitVocabulary:
    """The proper nouns and surface conventions one split draws its identifiers from."""

    first_names: tuple[str, ...]
    surnames: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]  # (city, country)
    regions: tuple[tuple[str, str], ...]  # (region, country), outside the US
    us_states: tuple[tuple[str, str], ...]  # (state, postal abbreviation)
    us_towns: tuple[tuple[str, str], ...]  # (town, state abbreviation)
    uk_towns: tuple[tuple[str, str], ...]  # (town, postcode area)
    au_towns: tuple[tuple[str, str], ...]  # (town, state abbreviation)
    institutions: tuple[str, ...]
    streets: tuple[str, ...]
    street_types: tuple[str, ...]
    street_directions: tuple[str, ...]
    email_domains: tuple[str, ...]
    doctor_titles: tuple[str, ...]
    patient_titles: tuple[str, ...]
    credentials: tuple[str, ...]
    area_codes: tuple[str, ...]
    intl_phone_patterns: tuple[str, ...]  # '#' is a random digit
    month_abbreviations: tuple[str, ...]  # January .. December
    # Towns outside the US, UK and Australia, named on their own ("lives in Tralee").
    other_towns: tuple[str, ...] = ()
    # Whole addresses outside the US, UK and Australia, each in its country's own order: '#' is a
    # random digit, '@' a random capital letter ("Flat #0#, Sai Residency, ..., Bengaluru 5600##").
    world_addresses: tuple[str, ...] = ()
    # Districts, wards, prefectures, counties and emirates named on their own ("Shibuya-ku").
    districts: tuple[str, ...] = ()

    @property
    def countries(self) -> tuple[str, ...]:
        return tuple(sorted({c for _, c in self.cities} | {c for _, c in self.regions}))

    @property
    def towns(self) -> tuple[str, ...]:
        """Towns named on their own ("lives in Bristol")."""
        return (
            *(t for t, _ in (*self.uk_towns, *self.us_towns, *self.au_towns)),
            *self.other_towns,
        )

    def proper_noun_tokens(self) -> frozenset[str]:
        """Case-folded words of every name, place, hospital, street and whole address, less
        generic words, numbers and single letters."""
        entries = (
            *self.first_names,
            *self.surnames,
            *(c for c, _ in self.cities),
            *self.countries,
            *(r for r, _ in self.regions),
            *(s for s, _ in self.us_states),
            *self.towns,
            *self.institutions,
            *self.streets,
            *self.world_addresses,
            *self.districts,
        )
        words = {w.casefold() for e in entries for w in re.split(r"[^\w']+", e) if len(w) > 1}
        return frozenset(w for w in words - _GENERIC_WORDS if not any(c.isdigit() for c in w))


_MONTHS = _words(
    "January February March April May June July August September October November December"
)

_DEV_VOCABULARY = SplitVocabulary(
    first_names=_entries(
        """James; Margaret; William; Eleanor; Thomas; Charlotte; George; Harriet; Edward; Alice;
        Siobhan; Callum; Niamh; Alejandro; Lucía; Mateo; Valentina; Javier; Camila; Priya; Arjun;
        Anjali; Rohan; Deepika; Vikram; Wei; Mei; Xiaoling; Hao; Haruto; Yuki; Min-jun; Seo-yeon;
        Minh; Thao; Omar; Fatima; Khalid; Layla; Yusuf; Dariush; Shirin; Emre; Elif; Adebayo;
        Chiamaka; Oluwaseun; Ngozi; Wanjiru; Katarzyna; Tomasz; Jürgen; Anneliese; Dmitri;
        Svetlana; Nikolaos; Eleni; Astrid; Lars; Avraham; Miriam; Rodrigo; Maricel; João; Thiago;
        Jamal; Keisha; Jane; John; Patrick; Bridget; Hamid; Nadia; Ravi; Sofia; Andrei; Ewa;
        Malcolm; Fiona"""
    ),
    surnames=_entries(
        """Smith; Patel; O'Neil; Okafor; Nguyen; García; Müller; Kowalski; Chen; Tanaka; Kim;
        Haddad; Rahman; Adeyemi; Mwangi; Otieno; Hernández; Johansson; Papadopoulos; Ivanov;
        Cohen; Santos; Reyes; Singh; Sharma; Iyer; Khan; Hussain; Yilmaz; Demir; Schmidt; Wagner;
        Fischer; Nowak; Wiśniewski; Zhang; Liu; Wang; Watanabe; Suzuki; Park; Choi; Tran; Pham;
        Eze; Nwosu; Obi; Abubakar; Hughes; Fletcher; Whitaker; Thornton; Pemberton; Abernathy;
        MacLeod; Fitzgerald; Gallagher; Brennan; Morales; Castillo; Vargas; Delgado; Romero;
        Ortega; van der Berg; De la Cruz; Al-Farsi; Nasser; Farouk; Karimi; Hosseini; Andersson;
        Lindqvist; Kuznetsova; Volkov; Goldberg; Friedman; Baptiste; Okonkwo; Kariuki; Njoroge;
        Robinson; Coleman; Holloway; Prescott; Ashworth; Lee; Oyelaran; Bhattacharya; Mukherjee;
        Reddy; Pillai; Gupta; Doherty; Quinn"""
    ),
    cities=_pairs(
        """Lagos/Nigeria; Ibadan/Nigeria; Kano/Nigeria; Nairobi/Kenya; Mombasa/Kenya;
        Kisumu/Kenya; Madrid/Spain; Seville/Spain; Valencia/Spain; Munich/Germany;
        Hamburg/Germany; Leipzig/Germany; Krakow/Poland; Gdansk/Poland; Mumbai/India;
        Chennai/India; Pune/India; Wuhan/China; Chengdu/China; Guangzhou/China; São Paulo/Brazil;
        Recife/Brazil; Manaus/Brazil; Guadalajara/Mexico; Oaxaca/Mexico; Monterrey/Mexico;
        Brisbane/Australia; Darwin/Australia; Cairo/Egypt; Alexandria/Egypt; Istanbul/Turkey;
        Izmir/Turkey; Karachi/Pakistan; Lahore/Pakistan; Lima/Peru; Cusco/Peru; Kingston/Jamaica;
        Montego Bay/Jamaica; Athens/Greece; Thessaloniki/Greece; Gothenburg/Sweden;
        Uppsala/Sweden; Winnipeg/Canada; Halifax/Canada; Kathmandu/Nepal; Pokhara/Nepal;
        Lusaka/Zambia; Harare/Zimbabwe; Almaty/Kazakhstan; Ulaanbaatar/Mongolia; Dakar/Senegal;
        Havana/Cuba"""
    ),
    regions=_pairs(
        """Queensland/Australia; Bavaria/Germany; Ontario/Canada; Alberta/Canada; Punjab/India;
        Andalusia/Spain; Yorkshire/England; Galicia/Spain; Sindh/Pakistan; Rift Valley/Kenya;
        Yucatán/Mexico; Anatolia/Turkey; Crete/Greece"""
    ),
    us_states=_pairs(
        """Ohio/OH; Texas/TX; Michigan/MI; Arizona/AZ; Oregon/OR; Kentucky/KY; Nevada/NV;
        Vermont/VT; Tennessee/TN; Louisiana/LA; Nebraska/NE; Montana/MT"""
    ),
    us_towns=_pairs(
        """Dayton/OH; Akron/OH; Tucson/AZ; Flagstaff/AZ; Lubbock/TX; El Paso/TX; Kalamazoo/MI;
        Saginaw/MI; Eugene/OR; Bend/OR; Reno/NV; Lexington/KY; Burlington/VT; Knoxville/TN;
        Shreveport/LA; Omaha/NE; Billings/MT"""
    ),
    uk_towns=_pairs(
        """Leeds/LS; Bristol/BS; Norwich/NR; Swansea/SA; Inverness/IV; Carlisle/CA; Exeter/EX;
        Harrogate/HG; Lancaster/LA; Ipswich/IP; Stoke-on-Trent/ST"""
    ),
    au_towns=_pairs("Toowoomba/QLD; Townsville/QLD; Cairns/QLD; Dubbo/NSW; Wagga Wagga/NSW"),
    institutions=_entries(
        """St Mary's Hospital; Massachusetts General Hospital; Hospital Universitario La Paz;
        Northside Medical Center; Charité; Leeds General Infirmary; Cleveland Clinic;
        Johns Hopkins Hospital; Princess Alexandra Hospital; Aga Khan University Hospital;
        Lagos University Teaching Hospital; Sunnybrook Health Sciences Centre;
        Riverside Community Hospital; Mount Sinai Hospital; Baptist Memorial Hospital;
        Addenbrooke's Hospital; Royal Free Hospital; Karolinska University Hospital;
        Tata Memorial Hospital; Brigham and Women's Hospital; Cedars-Sinai Medical Center;
        Hillcrest Medical Center; Valley View Regional Hospital; St Luke's Medical Center;
        Westmead Hospital; Bristol Royal Infirmary; Hammersmith Hospital;
        Kenyatta National Hospital; Royal Brisbane and Women's Hospital;
        Great Ormond Street Hospital; Ochsner Medical Center"""
    ),
    streets=_entries(
        """Baker; Oak; Elm; Maple; Chestnut; Birch; Sycamore; Hawthorn; Primrose; Kingfisher;
        Juniper; Magnolia; Cedar; Larkspur; Foxglove; Belmont; Fairview; Pinecrest; Lake Shore;
        Westbourne; Cromwell; Addison; Whitmore; Marlborough; Ravenswood"""
    ),
    street_types=_entries("Street; Road; Rd.; Drive; Grove; Lane; Avenue; Ave.; Close"),
    street_directions=("North ", "West ", "", "", ""),
    email_domains=_entries(
        """stmarys.nhs.uk; northsidemed.org; mgh.harvard.edu; clevelandclinic.org; luth.org.ng;
        lapaz-salud.es; charite-berlin.de; riversidehealth.org; leedsth.nhs.uk;
        hopkinsmedicine.org; sunnybrook.ca"""
    ),
    doctor_titles=("Dr.", "Dr.", "Dr.", "Prof."),
    patient_titles=("Mrs", "Mr.", "Ms.", "Mrs."),
    credentials=("MD", "FRCR", "MD, PhD"),
    area_codes=_entries("617; 312; 216; 503; 713; 602; 859; 702; 802; 313; 615; 402; 406"),
    intl_phone_patterns=_entries(
        """+44 20 #### ####; +44 113 ### ####; +61 2 #### ####; +61 7 #### ####;
        +49 89 #### ####; +234 803 ### ####; +52 55 #### ####; +86 27 #### ####"""
    ),
    month_abbreviations=_entries("Jan; Feb; Mar; Apr; May; Jun; Jul; Aug; Sep; Oct; Nov; Dec"),
)

_TEST_VOCABULARY = SplitVocabulary(
    first_names=_entries(
        """Robert; Elizabeth; Henry; Beatrice; Oliver; Florence; Arthur; Matilda; Samuel; Lucy;
        Aoife; Ciarán; Declan; Carmen; Diego; Rafael; Ximena; Gabriela; Sunita; Rajesh; Kavya;
        Aditya; Lakshmi; Sanjay; Ling; Jian; Yan; Zhiwei; Kenji; Sakura; Hiroshi; Ji-woo;
        Hyun-woo; Thanh; Linh; Ahmed; Aisha; Hassan; Mariam; Tariq; Farhad; Leila; Mehmet; Zeynep;
        Kwame; Akosua; Kofi; Ama; Abebe; Tigist; Oksana; Bohdan; Giuseppe; Francesca; Amélie;
        Théo; Benoît; Ingrid; Magnus; Yael; Moshe; Marites; Luana; Caio; Malik; Imani; Tremaine;
        Mary; Peter; Noreen; Seamus; Reza; Yasmin; Anand; Isabel; Pavel; Agnieszka; Hamish;
        Morag; Chinedu; Folake; Janet"""
    ),
    surnames=_entries(
        """Jones; Doe; Shah; O'Brien; Mensah; Nakamura; Dubois; Rossi; Esposito; Bianchi; Moreau;
        Lefebvre; Fontaine; Costa; Pereira; Oliveira; Yamamoto; Kobayashi; Sato; Lim; Tan; Ng;
        Wong; Huang; Zhao; Lin; Le; Vo; Hoang; Bui; Asante; Owusu; Boateng; Tesfaye; Bekele;
        Haile; Mutua; Kiplagat; Nkosi; Dlamini; Botha; Van Wyk; Kaur; Desai; Menon; Nair;
        Chatterjee; Verma; Qureshi; Siddiqui; Aziz; Mansour; Saleh; Abdullah; Rostami; Ahmadi;
        Kaya; Şahin; Öztürk; Novak; Horvat; Kovač; Popescu; Ionescu; Petrov; Sokolova; Levi;
        Katz; Mizrahi; Fernández; Gómez; Ruiz; Jiménez; Navarro; Herrera; McCarthy; O'Sullivan;
        Doyle; Byrne; Kavanagh; Walsh; Thompson; Harrison; Barrett; Whitfield; Langley; Okoro;
        Ibrahim; Danjuma; Hansen; Nilsson; Halvorsen; Jensen; Moreno; Alvarez; Carter; Mitchell;
        Sutherland; Blackwood; Grant; de Souza; Adeleke"""
    ),
    cities=_pairs(
        """Accra/Ghana; Kumasi/Ghana; Tamale/Ghana; Addis Ababa/Ethiopia; Gondar/Ethiopia;
        Durban/South Africa; Johannesburg/South Africa; Kampala/Uganda; Gulu/Uganda; Milan/Italy;
        Naples/Italy; Bologna/Italy; Lyon/France; Marseille/France; Lille/France;
        Porto/Portugal; Lisbon/Portugal; Hanoi/Vietnam; Da Nang/Vietnam; Osaka/Japan;
        Sapporo/Japan; Dhaka/Bangladesh; Sylhet/Bangladesh; Jakarta/Indonesia;
        Surabaya/Indonesia; Rosario/Argentina; Mendoza/Argentina; Bogotá/Colombia;
        Medellín/Colombia; Valparaíso/Chile; Temuco/Chile; Bucharest/Romania;
        Cluj-Napoca/Romania; Tehran/Iran; Shiraz/Iran; Auckland/New Zealand;
        Dunedin/New Zealand; Marrakesh/Morocco; Casablanca/Morocco; Riyadh/Saudi Arabia;
        Jeddah/Saudi Arabia; Cork/Ireland; Galway/Ireland; Bergen/Norway; Tromsø/Norway;
        Port-au-Prince/Haiti; Chiang Mai/Thailand; Bangkok/Thailand; Kigali/Rwanda;
        Lilongwe/Malawi; Yerevan/Armenia; Tashkent/Uzbekistan; Quito/Ecuador"""
    ),
    regions=_pairs(
        """Tuscany/Italy; Brittany/France; Hokkaido/Japan; Patagonia/Argentina;
        KwaZulu-Natal/South Africa; Canterbury/New Zealand; Algarve/Portugal; Fife/Scotland;
        Sumatra/Indonesia; Mekong Delta/Vietnam; Atacama/Chile; Connacht/Ireland;
        Tigray/Ethiopia; Ashanti/Ghana"""
    ),
    us_states=_pairs(
        """Florida/FL; Minnesota/MN; Colorado/CO; Alabama/AL; Iowa/IA; Maine/ME; Utah/UT;
        Virginia/VA; Wisconsin/WI; Kansas/KS; Idaho/ID; Oklahoma/OK; Arkansas/AR"""
    ),
    us_towns=_pairs(
        """Duluth/MN; Rochester/MN; Pueblo/CO; Boulder/CO; Tallahassee/FL; Gainesville/FL;
        Huntsville/AL; Ames/IA; Bangor/ME; Provo/UT; Ogden/UT; Roanoke/VA; Oshkosh/WI;
        Eau Claire/WI; Wichita/KS; Boise/ID; Tulsa/OK; Fayetteville/AR"""
    ),
    uk_towns=_pairs(
        """Sheffield/S; Plymouth/PL; Aberdeen/AB; Derby/DE; Truro/TR; Dundee/DD; Cardiff/CF;
        Hull/HU; Wolverhampton/WV; Middlesbrough/TS; Belfast/BT; Worcester/WR"""
    ),
    au_towns=_pairs("Ballarat/VIC; Bendigo/VIC; Launceston/TAS; Hobart/TAS; Geraldton/WA"),
    institutions=_entries(
        """Kings College Hospital; Royal Infirmary of Edinburgh; Mayo Clinic;
        Groote Schuur Hospital; St Vincent's Hospital; Hôpital Pitié-Salpêtrière;
        Policlinico Gemelli; Hospital Clínic de Barcelona; Toronto General Hospital;
        Christchurch Hospital; Korle Bu Teaching Hospital; Chris Hani Baragwanath Hospital;
        Ninewells Hospital; Beaumont Hospital; Mater Misericordiae University Hospital;
        Duke University Hospital; Mercy General Hospital; Lakeside Regional Medical Center;
        Eastside Community Hospital; Good Samaritan Hospital; Sacred Heart Medical Center;
        Queen Elizabeth University Hospital; Aintree University Hospital; Wythenshawe Hospital;
        Auckland City Hospital; Sheba Medical Center; Siriraj Hospital;
        Singapore General Hospital; Royal Prince Alfred Hospital; Bellevue Hospital;
        Parkland Memorial Hospital; Derriford Hospital; Mulago National Referral Hospital"""
    ),
    streets=_entries(
        """Poplar; Laurel; Rowan; Hazel; Beech; Willowbrook; Meadowbank; Orchard; Bramble;
        Heather; Alder; Holly; Linden; Aspen; Redwood; Clover; Thistle; Briar; Sandringham;
        Kensington; Ellesmere; Montrose; Glenwood; Lakeview; Harcourt; Ferncliff; Ashby"""
    ),
    street_types=_entries(
        "St.; Terrace; Crescent; Way; Blvd; Boulevard; Place; Court; Road; Street"
    ),
    street_directions=("N. ", "S. ", "East ", "", ""),
    email_domains=_entries(
        """kch.nhs.uk; mayo.edu; gssh.org.za; mercygeneral.org; eastsidehealth.com; sgh.com.sg;
        mater.ie; aucklandhealth.co.nz; ninewells-tayside.scot; dukehealth.org;
        parklandhospital.com"""
    ),
    doctor_titles=("Dr", "Dr", "Dr", "Doctor", "Professor"),
    patient_titles=("Miss", "Mr", "Ms", "Mx"),
    credentials=("M.D.", "DO", "MBBS FRCR", "FRANZCR"),
    area_codes=_entries("305; 612; 303; 205; 515; 207; 801; 804; 608; 316; 208; 918; 479"),
    intl_phone_patterns=_entries(
        """+33 1 ## ## ## ##; +33 4 ## ## ## ##; +91 9#### #####; +353 1 ### ####;
        +81 3 #### ####; +27 21 ### ####; +39 02 #### ####; +64 9 ### ####"""
    ),
    month_abbreviations=_entries(
        "Jan.; Feb.; Mar.; Apr.; May; June; July; Aug.; Sept.; Oct.; Nov.; Dec."
    ),
)

_HOLDOUT_VOCABULARY = SplitVocabulary(
    first_names=_entries(
        """Gwendolyn; Reginald; Dorothy; Clarence; Mildred; Bernard; Winifred; Herbert; Agatha;
        Percival; Maeve; Oisín; Saoirse; Ruairí; Pádraig; Eilidh; Lachlan; Isla; Kylie; Bronwyn;
        Jarrah; Pieter; Marietjie; Thabo; Nomvula; Sipho; Lerato; Zanele; Bongani; Chidi; Ifeoma;
        Emeka; Yetunde; Babatunde; Funmilayo; Obinna; Adaeze; Aminu; Hauwa; Venkatesh; Lalitha;
        Suresh; Meenakshi; Harpreet; Gurpreet; Aarav; Ishita; Prakash; Shalini; Parvathi;
        Rosalinda; Jericho; Maricris; Rodel; Kok Leong; Pei Shan; Boon Huat; Nurul; Siti; Azlan;
        Youssef; Rania; Karim; Samira; Nasrin; Bilal; Takeshi; Haruka; Seung-hoon; Soo-ah; Quang;
        Huong; Guadalupe; Esteban; Renata; Joaquín; Inés; Marisol; Søren; Ólafur; Zuzana; Radek;
        Björn; Dorota; Csaba; Vesna; Goran; Željko; Luuk; Sanne; Wouter; Margriet; Guillaume;
        Geneviève; Étienne; Josée; Jean-Marc; Marie-Claude; Anne-Sophie; Kalani; Tevita; Mele;
        Aroha"""
    ),
    surnames=_entries(
        """Ramsbottom; Higginbotham; Cartwright; Pennington; Ogilvie; Drummond; Buchanan;
        McAllister; O'Donoghue; O'Callaghan; Ní Bhriain; Kinsella; Tierney; Heffernan; Crowther;
        Trelawny; Penhaligon; Pryce; Llewellyn; Vaughan; van Rooyen; du Plessis; van den Heever;
        Venter; Pretorius; Coetzee; Steyn; de Villiers; de Groot; Vermeulen; Visser; ten Brink;
        Mthembu; Ndlovu; Khumalo; Mahlangu; Molefe; Sithole; Okonjo-Iweala; Adewale; Ogunleye;
        Nwachukwu; Balogun; Olanrewaju; Igwe; Danladi; Venkataraman; Krishnamurthy; Subramanian;
        Dhillon; Sandhu; Banerjee; Ghosh; Chowdhury; Kulkarni; Deshpande; Hegde; D'Mello; D'Silva;
        Fernandes; Malhotra; Kapoor; Macapagal; Dimaculangan; Bautista; Villanueva; Panganiban;
        Soriano; Teo; Goh; Koh; Yeo; Chua; Quek; Lau; bin Ismail; Fujimoto; Inoue; Hayashi; Jeong;
        Yoon; Phan; Truong; Khoury; Abboud; Darwish; Yazdani; Kılıç; Aydın; Çelik; Yousafzai;
        Durrani; Lindgren; Bergström; Virtanen; Korhonen; Kovács; Szabó; Dvořák; Procházka;
        Wójcik; Kamińska; Petrović; Jovanović; Ólafsdóttir; di Stefano; Lombardi; de la Fuente;
        Iglesias; Guerrero; Chevalier; Girard; Tremblay; Gagnon; Bouchard; Côté; Quispe; Mamani;
        Villalobos; Zúñiga; Echeverría; Hartley-Brewer; Rhys-Davies; N'Diaye; Tupou; Kealoha;
        Ngata; Featherstonehaugh"""
    ),
    cities=_pairs(
        """Cebu/Philippines; Davao/Philippines; Baguio/Philippines; Kuching/Malaysia;
        Ipoh/Malaysia; Kandy/Sri Lanka; Galle/Sri Lanka; Arusha/Tanzania; Mwanza/Tanzania;
        Douala/Cameroon; Yaoundé/Cameroon; Gaborone/Botswana; Francistown/Botswana;
        Windhoek/Namibia; Maputo/Mozambique; Beira/Mozambique; Utrecht/Netherlands;
        Groningen/Netherlands; Ghent/Belgium; Liège/Belgium; Graz/Austria; Innsbruck/Austria;
        Basel/Switzerland; Lausanne/Switzerland; Aarhus/Denmark; Odense/Denmark; Tampere/Finland;
        Oulu/Finland; Brno/Czechia; Debrecen/Hungary; Szeged/Hungary; Zagreb/Croatia;
        Novi Sad/Serbia; Lviv/Ukraine; Kharkiv/Ukraine; Beirut/Lebanon; Amman/Jordan;
        Irbid/Jordan; Erbil/Iraq; Basra/Iraq; Muscat/Oman; Salalah/Oman; Doha/Qatar;
        Sharjah/United Arab Emirates; Cochabamba/Bolivia; Sucre/Bolivia; Asunción/Paraguay;
        Montevideo/Uruguay; Tegucigalpa/Honduras; Suva/Fiji; Lautoka/Fiji; Apia/Samoa;
        Yangon/Myanmar; Mandalay/Myanmar; Siem Reap/Cambodia; Vientiane/Laos;
        Freetown/Sierra Leone; Monrovia/Liberia; Bamako/Mali; Sfax/Tunisia; Khartoum/Sudan;
        Antananarivo/Madagascar; Reykjavík/Iceland; Valletta/Malta; Limassol/Cyprus;
        Tartu/Estonia; Kaunas/Lithuania; Ljubljana/Slovenia; Plovdiv/Bulgaria; Tirana/Albania;
        Herat/Afghanistan"""
    ),
    regions=_pairs(
        """Mindanao/Philippines; Visayas/Philippines; Sabah/Malaysia; Sarawak/Malaysia;
        Zanzibar/Tanzania; Flanders/Belgium; Tyrol/Austria; Jutland/Denmark; Lapland/Finland;
        Moravia/Czechia; Dalmatia/Croatia; Gwynedd/Wales; Powys/Wales; Okavango/Botswana"""
    ),
    us_states=_pairs(
        """Illinois/IL; Pennsylvania/PA; California/CA; Wyoming/WY; Washington/WA; Missouri/MO;
        North Carolina/NC; Delaware/DE; Hawaii/HI; Alaska/AK; Connecticut/CT; Mississippi/MS;
        South Dakota/SD"""
    ),
    us_towns=_pairs(
        """Peoria/IL; Champaign/IL; Scranton/PA; Erie/PA; Fresno/CA; Modesto/CA; Cheyenne/WY;
        Casper/WY; Spokane/WA; Yakima/WA; Joplin/MO; Springfield/MO; Asheville/NC;
        Wilmington/NC; Dover/DE; Hilo/HI; Juneau/AK; Fairbanks/AK; Hartford/CT; Stamford/CT;
        Tupelo/MS; Biloxi/MS; Sioux Falls/SD; Rapid City/SD"""
    ),
    uk_towns=_pairs(
        """Shrewsbury/SY; Taunton/TA; Wrexham/LL; Kendal/LA; Grimsby/DN; Yeovil/BA; Stirling/FK;
        Oban/PA; Kilmarnock/KA; Llanelli/SA; Barnstaple/EX; Hereford/HR; Lerwick/ZE;
        Kirkwall/KW; Enniskillen/BT; Chesterfield/S; Peterborough/PE; Colchester/CO;
        Maidstone/ME; Dumfries/DG"""
    ),
    au_towns=_pairs(
        """Whyalla/SA; Murray Bridge/SA; Katherine/NT; Tennant Creek/NT; Queanbeyan/NSW;
        Mackay/QLD; Bundaberg/QLD; Shepparton/VIC; Warrnambool/VIC; Albany/WA; Kalgoorlie/WA;
        Devonport/TAS; Burnie/TAS; Tuggeranong/ACT"""
    ),
    institutions=_entries(
        """Barnes-Jewish Hospital; Northwestern Memorial Hospital;
        Vanderbilt University Medical Center; Yale New Haven Hospital;
        Rush University Medical Center; Emory University Hospital; Montefiore Medical Center;
        Intermountain Medical Center; Dartmouth-Hitchcock Medical Center; Froedtert Hospital;
        Cottonwood Community Hospital; Freeman Hospital; Southmead Hospital;
        Royal Cornwall Hospital; Pinderfields Hospital; Morriston Hospital; Raigmore Hospital;
        Altnagelvin Area Hospital; Hinchingbrooke Hospital; Airedale General Hospital;
        Royal Shrewsbury Hospital; Royal Adelaide Hospital; Flinders Medical Centre;
        Sir Charles Gairdner Hospital; Monash Medical Centre; Austin Hospital;
        Gold Coast University Hospital; Canberra Hospital; Liverpool Hospital; CMC Vellore;
        Kasturba Hospital Manipal; Sir Ganga Ram Hospital; Nizam's Institute of Medical Sciences;
        Amrita Institute of Medical Sciences; PGIMER Chandigarh; Tygerberg Hospital;
        Steve Biko Academic Hospital; Inkosi Albert Luthuli Central Hospital;
        Red Cross War Memorial Children's Hospital; Tembisa Hospital; Foothills Medical Centre;
        Vancouver General Hospital; Ottawa Hospital; Hamilton General Hospital;
        Royal Jubilee Hospital; Saskatoon City Hospital; University Hospital Limerick;
        Tallaght University Hospital; Connolly Hospital Blanchardstown;
        University Hospital Waterford; Letterkenny University Hospital;
        Changi General Hospital; Khoo Teck Puat Hospital; Sengkang General Hospital;
        KK Women's and Children's Hospital; Jos University Teaching Hospital;
        Ahmadu Bello University Teaching Hospital;
        Obafemi Awolowo University Teaching Hospitals Complex; National Hospital Abuja;
        Federal Medical Centre Owerri; Philippine General Hospital; Makati Medical Center;
        Vicente Sotto Memorial Medical Center; Southern Philippines Medical Center;
        Hospital Kuala Lumpur; Hospital Sultanah Aminah"""
    ),
    streets=_entries(
        """Jacaranda; Wattle; Banksia; Tamarind; Acacia; Mahogany; Bougainvillea; Frangipani;
        Heron; Kestrel; Osprey; Wren; Pelican; Marigold; Lavender; Bluebell; Daffodil; Mulberry;
        Quince; Greenhill; Stonebridge; Millbrook; Riverbend; Copperfield; Wellington; Tamarisk"""
    ),
    street_types=_entries("St; Rd; Ave; Pde; Hwy; Cres; Ct; Pl; Mews; Row; Parade; Esplanade"),
    street_directions=("NE ", "SW ", "Upper ", "", ""),
    email_domains=_entries(
        """nhs.net; rushmed.org; ynhh.org; sahealth.sa.gov.au; cmcvellore.ac.in;
        westerncape.gov.za; hse.ie; cgh.com.sg; juth.org.ng; pgh.gov.ph; ahs.ca;
        emoryhealthcare.org; monashhealth.org; yahoo.co.in; gmail.com"""
    ),
    doctor_titles=("Prof", "Assoc. Prof.", "A/Prof", "Dr (Mrs)", "Dr.(Ms)", "Dr (Mr)", "DR"),
    patient_titles=("Smt.", "Shri", "Mdm", "Mme", "MRS", "MR", "Sra."),
    credentials=(
        "MBChB, FCRad(SA)",
        "FCRad(SA)",
        "DNB",
        "MD, DNB",
        "MMed",
        "MMed (Rad)",
        "FRCPC",
        "FFRRCSI",
        "DMRD",
        "DABR",
    ),
    area_codes=_entries(
        "217; 309; 570; 814; 559; 209; 307; 509; 417; 828; 910; 302; 808; 907; 860; 203; 662; 605"
    ),
    intl_phone_patterns=_entries(
        """+255 (0)22 ### ####; +267 3## ####; +94 (0)81 ### ####; +65 6### ####;
        +63 2 8### ####; +60 3-#### ####; +1 (306) ###-####; +974 4### ####;
        +31 (0)30 ### ####; +32 (0)9 ### ## ##; +679 3## ####; +961 1 ### ###"""
    ),
    month_abbreviations=_entries("Jan; Feb; Mar; Apr; May; Jun; Jul; Aug; Sept; Oct; Nov; Dec"),
    other_towns=_entries(
        """Mysuru; Tralee; Stellenbosch; Abeokuta; Dumaguete; Saskatoon; Moncton; Nanaimo;
        Castlebar; Letterkenny; Polokwane; Mthatha; Seremban; Kaduna"""
    ),
    world_addresses=_entries(
        """Flat #0#, Sai Residency, 100 Feet Rd, Indiranagar, Bengaluru 5600##;
        H.No. #-#-##/#, Banjara Hills, Hyderabad - 5000##;
        No. ##, 3rd Cross, Jayanagar, Bengaluru 5600##;
        Plot No. ##, Gomti Nagar, Lucknow, Uttar Pradesh 2260##;
        Door No. ##/#, Gandhi Salai, Vellore, Tamil Nadu 6320##;
        ##, Shanti Kunj Apartments, Malviya Nagar, Jaipur 3020##;
        TC ##/####, Kowdiar, Thiruvananthapuram, Kerala 6950##;
        Flat ##, Gulmohar Heights, Kadri, Mangaluru, Karnataka 5750##;
        ## Voortrekker Rd, Bellville, Cape Town, 75##;
        ## Dorp St, Stellenbosch, 76##;
        Erf ###, Ngangelizwe, Mthatha, 50##;
        ## Nelson Mandela Dr, Polokwane, 07##;
        ## Main St, Tralee, Co. Kerry, V92 @#@#;
        Apt 1#, The Maltings, Bridge St, Sligo, F91 @#@#;
        ## Seafield Ave, Clontarf, Dublin 3, D03 @#@#;
        ## Spadina Cres E, Saskatoon SK S7K #@#;
        Apt ###, #### Rue Laviolette, Trois-Rivières QC G9A #@#;
        #### Bernard Ave, Kelowna BC V1Y #@#;
        ##-### Mountain Rd, Moncton NB E1C #@#;
        Plot ##, Ogui Rd, Enugu, Enugu State;
        No. ## Okigwe Rd, Owerri, Imo State;
        ## Ahmadu Bello Way, Kaduna, Kaduna State;
        P.M.B. ####, Abeokuta, Ogun State;
        ### Rizal Ave, Brgy. Poblacion, Iloilo City 5000;
        Blk 1# Lot ##, Brgy. San Isidro, Cainta, Rizal 19##;
        Unit ###, Tower 2, Ortigas Centre, Pasig City 16##;
        ### Mabini St, Dumaguete City, Negros Oriental 62##;
        No. ##, Jalan Ampang, 50### Kuala Lumpur;
        Lot ###, Jalan Tun Razak, 70### Seremban, Negeri Sembilan;
        Lot ##, Ratu Sukuna Rd, Suva"""
    ),
)

_VOCABULARIES = {
    "dev": _DEV_VOCABULARY,
    "test": _TEST_VOCABULARY,
    "holdout": _HOLDOUT_VOCABULARY,
}


def split_vocabulary(split: str) -> SplitVocabulary:
    """The vocabulary a split draws its identifiers from (for disjointness checks)."""
    _check_split(split)
    if split == "holdout2":
        from medrep.data.phi_holdout2 import (
            VOCABULARY,
        )  # lazily: phi_holdout2 builds on this module

        return VOCABULARY
    return _VOCABULARIES[split]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"phi_corpus: split={split!r} is not one of {SPLITS}; pass one of them")


# ---------------------------------------------------------------------------------------------
# Surface formats. A pattern is str.format'ted; "[[...]]" marks the identifier inside it (the
# whole surface when unmarked). Each split has its own variants of every format family.

_DATE_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "mdy_numeric": ("{mm}/{dd}/{yyyy}", "{m}/{d}/{yyyy}", "{m}-{d}-{yyyy}"),
        "ymd_numeric": ("{yyyy}-{mm}-{dd}",),
        "dmy_numeric": ("{dd}.{mm}.{yyyy}", "{d}.{m}.{yyyy}"),
        "month_day_year": ("{month} {d}, {yyyy}", "{mon} {d}, {yyyy}"),
        "day_month_year": ("{d} {month} {yyyy}", "{d} {mon} {yyyy}"),
        "day_mon_year": ("{dd}-{MON}-{yyyy}",),
        "month_day": ("{mon} {d}", "{month} {d}"),
        "day_month": ("{d} {month}", "{dth} of {month}"),
        "md_numeric": ("{m}/{d}",),
    },
    "test": {
        "mdy_numeric": ("{m}/{d}/{yy}", "{mm}/{dd}/{yy}", "{m}-{d}-{yy}", "{mm}-{dd}-{yyyy}"),
        "ymd_numeric": ("{yyyy}-{mm}-{dd}", "{yyyy}/{mm}/{dd}"),
        "dmy_numeric": ("{dd}/{mm}/{yyyy}", "{d}.{m}.{yy}"),
        "month_day_year": ("{month} {d} {yyyy}", "{mon} {dth}, {yyyy}"),
        "day_month_year": ("{dth} {month} {yyyy}", "{d} {mon} {yyyy}"),
        "day_mon_year": ("{dd}{MON}{yyyy}", "{d}-{MON}-{yy}"),
        "month_day": ("{mon} {dth}", "{month} {dth}"),
        "day_month": ("{dth} {month}", "the [[{dth} of {month}]]"),
        "md_numeric": ("{mm}/{dd}", "{d}/{m}"),
    },
    "holdout": {
        "mdy_numeric": ("{wkd} {m}/{d}/{yyyy}", "{wkd}, {mm}/{dd}/{yy}"),
        "ymd_numeric": ("{yyyy}.{mm}.{dd}", "{yyyy}{mm}{dd}"),
        "dmy_numeric": ("{d}/{m}/{yyyy}", "{dd}-{mm}-{yy}", "{d}-{m}-{yyyy}"),
        "month_day_year": (
            "{Mon}-{dd}-{yyyy}",
            "{month} {dth} {yyyy}",
            "{weekday}, {month} {d}, {yyyy}",
        ),
        "day_month_year": (
            "{dd} {MON} {yy}",
            "{dth} {mon}, {yyyy}",
            "{wkd} {d} {mon} {yyyy}",
            "{dd} {month} {yyyy}",
        ),
        "day_mon_year": ("{dd}{MON}{yy}", "{dd}/{MON}/{yyyy}", "{d}-{Mon}-{yy}"),
        "month_day": ("{MON} {dd}", "{wkd} {mon} {d}"),
        "day_month": ("{dth} {mon}", "{wkd} {d} {mon}", "{d} {MON}"),
        "md_numeric": ("{wkd} {d}/{m}", "{wkd} {m}/{d}"),
    },
}
# Month and year only ("in March 2021"): its own slot, because "on March 2021" reads wrong.
_MONTH_YEAR_FORMATS = {
    "dev": ("{month} {yyyy}", "{mon} {yyyy}", "{mm}/{yyyy}"),
    "test": ("{mon} {yyyy}", "{month} of {yyyy}", "{m}/{yyyy}"),
    "holdout": ("{mon} '{yy}", "{Mon}-{yy}", "{mm}.{yyyy}", "{month}, {yyyy}"),
}
_TIME_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "clock24": ("{HH}:{MM}",),
        "clock12": ("{h}:{MM} {ap_dots}",),
        "hour12": ("{h} {AP}",),
        "military": ("[[{HH}{MM}]] hours",),
    },
    "test": {
        "clock24": ("{H}:{MM}",),
        "clock12": ("{h}:{MM} {AP}", "{h}:{MM}{ap}"),
        "hour12": ("{h} {ap_dots}", "{h}{ap}"),
        "military": ("[[{HH}{MM}]] hrs", "[[{HH}{MM}]]h"),
    },
    "holdout": {
        "clock24": ("{HH}h{MM}", "{HH}.{MM}", "{H}h{MM}"),
        "clock12": ("{h}.{MM}{ap}", "{h}.{MM} {ap}", "{h}:{MM}{AP}"),
        "hour12": ("{h}{AP}", "{h} {ap}"),
        "military": ("{HH}{MM}", "[[{HH}{MM}]] hr", "[[{HH}:{MM}]] hrs"),
    },
}
_PHONE_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "us_paren": ("({area}) {ex}-{line}",),
        "us_dash": ("{area}-{ex}-{line}",),
        "us_dot": ("{area}.{ex}.{line}",),
        "local": ("{ex}-{line}",),
    },
    "test": {
        "us_paren": ("({area}){ex}-{line}", "({area}) {ex}-{line}"),
        "us_dash": ("1-{area}-{ex}-{line}", "{area}-{ex}-{line}"),
        "us_dot": ("{area}.{ex}.{line}",),
        "local": ("{ex}-{line}", "{ex} {line}"),
    },
    # the countries dev and test dial from abroad are written as dialled at home, trunk prefix first
    "holdout": {
        "us_spaced": ("({area}) {ex} {line}", "+1 {area} {ex} {line}"),
        "us_slash": ("{area}/{ex}-{line}",),
        "au": ("(08) 8### ####", "04## ### ###", "1800 ### ###", "1300 ### ###"),
        "uk": ("01632 ######", "0161 ### ####", "07700 ######"),
        "trunk": ("(0)12 ### ####", "(0)51 ### ####", "(061) ### ###", "(074) ### ####"),
        "in_ng_ph": (
            "080-2### ####",
            "0471-2######",
            "7####-#####",
            "0706 ### ####",
            "(032) ### ####",
        ),
    },
}
_PAGER_FORMATS = {
    "dev": ("pager [[{p1}-{p4}]]", "pgr [[{p5}]]"),
    "test": ("bleep [[{p4}]]", "beeper [[{p1}-{p4}]]"),
    "holdout": ("radio pager [[{p5}]]", "pager no. [[{p4}]]", "blp. [[{p4}]]"),
}
_EXTENSION_FORMATS = {
    "dev": ("ext. [[{p4}]]", "extension [[{p4}]]"),
    "test": ("x[[{p4}]]", "ext [[{p4}]]"),
    "holdout": ("ext [[{p1}-{p4}]]", "extn [[{p4}]]", "int. [[{p4}]]", "local [[{p4}]]"),
}
_EMAIL_LOCAL_PARTS = {
    "dev": ("{first}.{last}", "{f}{last}", "{first}.{last}", "radiology.reports", "xray.queries"),
    "test": ("{last}.{first}", "{first}_{last}", "{f}.{last}{nn}", "imaging-enquiries"),
    "holdout": (
        "{last}.{f}",
        "{first}-{last}",
        "{f}{last}{nn}",
        "{first}{nn}",
        "radiology.secretaries",
        "xr.bookings",
    ),
}
_ID_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "mrn": ("00{d6}", "{d7}", "{d8}"),
        "acc": ("A{d7}", "{d8}"),
        "pid": ("PX-{d5}", "PT{d6}"),
        "ssn": ("{ssn3}-{d2}-{d4}",),
        "insurance": ("{mbi}",),
        "bare": ("{d7}", "{d9}"),
    },
    "test": {
        "mrn": ("{d9}", "{d10}", "K{d7}"),
        "acc": ("RAD{d8}", "CX-{d7}"),
        "pid": ("MRX/{d6}", "H-{d4}-{d4}"),
        "ssn": ("{ssn3}-{d2}-{d4}", "{ssn3} {d2} {d4}"),
        "insurance": ("{nhs}",),
        "bare": ("{d8}", "{d10}"),
    },
    # national identity and insurance numbers carry their cue, which the span leaves out
    "holdout": {
        "mrn": ("##-##-###", "@#######", "#### ####", "M######"),
        "acc": ("XR-#######", "E#########", "##########-1"),
        "pid": ("UH-######", "####/##", "##############"),
        "natid": (
            "Aadhaar [[#### #### ####]]",
            "PPSN [[#######@]]",
            "NRIC [[S#######@]]",
            "SA ID no. [[#############]]",
            "NIN [[###########]]",
            "PhilSys [[####-####-####-####]]",
        ),
        "insurance": (
            "Medicare [[#### ##### #]]",
            "OHIP [[####-###-### @@]]",
            "PHN [[#### ### ###]]",
            "PhilHealth [[##-#########-#]]",
            "IHI [[8003 60## #### ####]]",
            "CHI [[##########]]",
        ),
        "bare": ("#########", "###########", "@##########"),
    },
}
_AGE_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "adj": ("[[{n}]]-year-old", "[[{n}]] yo", "[[{words}]]-year-old"),
        "pred": ("age [[{n}]]", "[[{n}]] years of age", "[[{words}]] years of age"),
        "sex": ("[[{n}]]{sex}", "[[{n}]]/{sex}"),
    },
    "test": {
        "adj": ("[[{n}]] year old", "[[{n}]] y/o", "[[{n}]]-yr-old", "[[{words}]] year old"),
        "pred": ("aged [[{n}]]", "[[{n}]] years old", "[[{words}]] years old"),
        "sex": ("[[{n}]] {sex}", "[[{n}]]yo {sex}"),
    },
    "holdout": {
        "adj": ("[[{n}]] y.o.", "[[{n}]] yr old", "[[{n}]]-yr old", "[[{words}]]-year old"),
        "pred": ("aged [[{words}]]", "[[{n}]] yrs", "[[{n}]]y", "[[{n}]] years"),
        "sex": ("{sex}/[[{n}]]", "[[{n}]]y {sex}", "[[{n}]] yrs/{sex}"),
    },
}
_NAME_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "doctor": (
            "{title} [[{last}]]",
            "{title} [[{first} {last}]]",
            "{title} [[{first} {i}. {last}]]",
        ),
        "signature": (
            "[[{first} {last}]]",
            "[[{first} {last}]], {cred}",
            "[[{first} {i}. {last}]], {cred}",
        ),
        "patient": ("{ptitle} [[{last}]]", "{ptitle} [[{first} {last}]]"),
    },
    "test": {
        "doctor": (
            "{title} [[{last}]]",
            "{title} [[{i}. {last}]]",
            "{title} [[{first} {i} {last}]]",
            "{title} [[{first} {last}]]",
        ),
        "signature": (
            "[[{last}, {first}]]",
            "[[{first} {last}]] {cred}",
            "[[{i}. {last}]], {cred}",
        ),
        "patient": ("{ptitle} [[{last}]]", "[[{LAST}, {first}]]", "[[{first} {last}]]"),
    },
    "holdout": {
        "doctor": (
            "{title} [[{last}]]",
            "{title} [[{fi}.{i}. {last}]]",
            "{title} [[{first} {LAST}]]",
            "{title} [[{fi}. {last}]]",
        ),
        "signature": (
            "[[{first} {LAST}]], {cred}",
            "[[{fi}.{i}. {last}]] {cred}",
            "[[{LAST}, {first}]] ({cred})",
            "[[{first} {last}]] ({cred})",
        ),
        "patient": (
            "[[{last}, {first}]]",
            "[[{LAST} {first}]]",
            "{ptitle} [[{first} {LAST}]]",
            "[[{LAST}, {first} {i}]]",
            "{ptitle} [[{fi}. {last}]]",
        ),
        # staff named without a title ("Dictated by: Chidi OGUNLEYE")
        "clinician": (
            "[[{first} {LAST}]]",
            "[[{fi}.{i}. {last}]]",
            "[[{LAST} {fi}.{i}.]]",
            "[[{fi}. {LAST}]]",
        ),
    },
}
_ADDRESS_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "us": ("{num} {dir}{street} {type}, {us_town}, {st} {zip}",),
        "street_only": ("{num} {dir}{street} {type}",),
        "uk": ("{num} {street} {type}, {uk_town} {postcode}", "{num} {street} {type}, {uk_town}"),
        "unit": ("Flat {unit}, {num} {street} {type}, {uk_town}",),
        "au": ("{num} {street} {type}, {au_town} {au_st} {au_pc}",),
    },
    "test": {
        "us": (
            "{num} {dir}{street} {type}, {us_town}, {st} {zip}",
            "{num} {street} {type}, {us_town} {st}",
        ),
        "street_only": ("{num} {street} {type}",),
        "uk": ("{num} {street} {type}, {uk_town}, {postcode}",),
        "unit": ("Apt {unit}{letter}, {num} {street} {type}", "Unit {unit}, {num} {street} {type}"),
        "au": ("{unit}/{num} {street} {type}, {au_town} {au_st}",),
    },
    "holdout": {
        "us": (
            "Apt {unit}{letter}, {num} {dir}{street} {type}, {us_town}, {st} {zip}",
            "{num} {street} {type} Apt {unit}{letter}, {us_town} {st} {zip}-####",
        ),
        "street_only": ("{num}, {street} {type}", "No. {num} {street} {type}"),
        "uk": (
            "Flat {unit}, {street} Ct, {num} {street} {type}, {uk_town} {postcode}",
            "{num}, {street} {type}, {uk_town}. {postcode}",
        ),
        "box": (
            "PO Box ###, {au_town} {au_st} {au_pc}",
            "P.O. Box ####, {us_town}, {st} {zip}",
            "Locked Bag ##, {au_town} {au_st} {au_pc}",
        ),
        "au": (
            "Unit {unit}/{num} {street} {type}, {au_town} {au_st} {au_pc}",
            "{num} {street} {type}, {au_town}, {au_st} {au_pc}",
        ),
    },
}
_CITY_COUNTRY_FORMATS = {
    "dev": ("[[{city}]], [[{country}]]",),
    "test": (
        "[[{city}]], [[{country}]]",
        "[[{city}]] ([[{country}]])",
        "[[{city}]] in [[{country}]]",
    ),
    "holdout": (
        "[[{city}]] - [[{country}]]",
        "[[{city}]]/[[{country}]]",
        "[[{city}]], [[{COUNTRY}]]",
    ),
}
# Holdout's own families: a date of birth, with or without the age it gives; a day of the month
# on its own; a RIS time stamp, as (date, separator, time) patterns.
_DOB_FORMATS = {
    "holdout": ("{d}/{m}/{yyyy}", "{dd}-{Mon}-{yyyy}", "{dd} {MON} {yyyy}", "{yyyy}{mm}{dd}")
}
_DOB_AGE_FORMATS = {"holdout": (" (age [[{n}]])", " ([[{n}]]y)", ", [[{n}]] yrs")}
_DAY_FORMATS = {"holdout": ("on the [[{dth}]]", "on the [[{dth}]] inst.", "on [[{wkd} {dth}]]")}
_STAMP_FORMATS = {
    "holdout": (
        ("{dd}-{Mon}-{yyyy}", " ", "{HH}:{MM}"),
        ("{d}/{m}/{yyyy}", " at ", "{HH}.{MM}"),
        ("{yyyy}.{mm}.{dd}", " ", "{HH}:{MM}:{SS}"),
    )
}
_AU_POSTCODE_DIGIT = {
    "QLD": "4",
    "NSW": "2",
    "VIC": "3",
    "TAS": "7",
    "WA": "6",
    "SA": "5",
    "NT": "0",
    "ACT": "2",
}


_MARK_RE = re.compile(r"\[\[(.+?)\]\]")
_SLOT_RE = re.compile(r"\{(\w+)\}")


def _marked(surface: str, category: str | None) -> list[Part]:
    """Parts of a formatted surface: text inside [[...]] is the identifier, or all of it."""
    if category is None:
        return [(_MARK_RE.sub(r"\1", surface), None)]
    if "[[" not in surface:
        return [(surface, category)]
    parts: list[Part] = []
    position = 0
    for match in _MARK_RE.finditer(surface):
        if match.start() > position:
            parts.append((surface[position : match.start()], None))
        parts.append((match.group(1), category))
        position = match.end()
    if position < len(surface):
        parts.append((surface[position:], None))
    return parts


@dataclass
class _Context:
    rng: random.Random
    split: str
    vocabulary: SplitVocabulary


def _digits(rng: random.Random, n: int) -> str:
    """n random digits, the first not zero."""
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def _any_digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_ONES = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS = _words("_ _ twenty thirty forty fifty sixty seventy eighty ninety")


def _number_words(n: int) -> str:
    """English words for 0 <= n < 200: 92 -> 'ninety-two', 101 -> 'one hundred and one'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    rest = n - 100
    return "one hundred" + (f" and {_number_words(rest)}" if rest else "")


def _ascii_lower(name: str) -> str:
    """'Müller' -> 'muller', "O'Neil" -> 'oneil': an e-mail local part from a name."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


_PLACEHOLDER_LETTERS = "ABCDEFGHJKLMNPRSTVWXY"


def _fill_placeholders(rng: random.Random, pattern: str) -> str:
    """'#' -> a random digit, '@' -> a random capital letter (draws nothing when there are none)."""

    def fill(match: re.Match[str]) -> str:
        if match.group() == "#":
            return str(rng.randint(0, 9))
        return rng.choice(_PLACEHOLDER_LETTERS)

    return re.sub("[#@]", fill, pattern)


def _format(
    ctx: _Context, patterns: Sequence[str], fields: dict[str, str], category: str | None
) -> list[Part]:
    pattern = _fill_placeholders(ctx.rng, ctx.rng.choice(patterns))
    return _marked(pattern.format(**fields), category)


def _family_format(
    ctx: _Context,
    table: dict[str, dict[str, tuple[str, ...]]],
    fields: dict[str, str],
    category: str,
) -> list[Part]:
    families = table[ctx.split]
    family = ctx.rng.choice(tuple(families))
    return _format(ctx, families[family], fields, category)


def _date_fields(ctx: _Context, years: tuple[int, int] = (1998, 2024)) -> dict[str, str]:
    rng = ctx.rng
    year, month, day = rng.randint(*years), rng.randint(1, 12), rng.randint(1, 28)
    weekday = datetime.date(year, month, day).strftime("%A")
    return {
        "d": str(day),
        "dd": f"{day:02d}",
        "dth": _ordinal(day),
        "m": str(month),
        "mm": f"{month:02d}",
        "yyyy": str(year),
        "yy": f"{year % 100:02d}",
        "month": _MONTHS[month - 1],
        "mon": ctx.vocabulary.month_abbreviations[month - 1],
        "MON": _MONTHS[month - 1][:3].upper(),
        "Mon": _MONTHS[month - 1][:3],
        "weekday": weekday,
        "wkd": weekday[:3],
    }


def _slot_date(ctx: _Context) -> list[Part]:
    return _family_format(ctx, _DATE_FORMATS, _date_fields(ctx), "date")


def _slot_month_year(ctx: _Context) -> list[Part]:
    return _format(ctx, _MONTH_YEAR_FORMATS[ctx.split], _date_fields(ctx), "date")


def _slot_day(ctx: _Context) -> list[Part]:
    return _format(ctx, _DAY_FORMATS[ctx.split], _date_fields(ctx), "date")


def _slot_dob(ctx: _Context) -> list[Part]:
    return _format(ctx, _DOB_FORMATS[ctx.split], _date_fields(ctx, (1922, 1990)), "date")


def _slot_stamp(ctx: _Context) -> list[Part]:
    """A RIS time stamp: a date span and a time span."""
    rng = ctx.rng
    date_pattern, separator, time_pattern = rng.choice(_STAMP_FORMATS[ctx.split])
    fields = _date_fields(ctx)
    fields |= {
        "HH": f"{rng.randint(0, 23):02d}",
        "MM": f"{rng.randint(0, 59):02d}",
        "SS": f"{rng.randint(0, 59):02d}",
    }
    return [
        (date_pattern.format(**fields), "date"),
        (separator, None),
        (time_pattern.format(**fields), "time"),
    ]


def _slot_time(ctx: _Context) -> list[Part]:
    rng = ctx.rng
    hour = rng.randint(0, 23)
    minute = (
        rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50)) if rng.random() < 0.6 else rng.randint(0, 59)
    )
    pm = hour >= 12
    fields = {
        "H": str(hour),
        "HH": f"{hour:02d}",
        "MM": f"{minute:02d}",
        "h": str(hour % 12 or 12),
        "ap_dots": "p.m." if pm else "a.m.",
        "AP": "PM" if pm else "AM",
        "ap": "pm" if pm else "am",
    }
    return _family_format(ctx, _TIME_FORMATS, fields, "time")


def _slot_phone(ctx: _Context) -> list[Part]:
    rng = ctx.rng
    if rng.random() < 0.25:
        pattern = rng.choice(ctx.vocabulary.intl_phone_patterns)
        return [(_fill_placeholders(rng, pattern), "phone")]
    exchange = str(rng.randint(201, 989))
    fields = {
        "area": rng.choice(ctx.vocabulary.area_codes),
        "ex": "555" if rng.random() < 0.2 else exchange,
        "line": _any_digits(rng, 4),
    }
    return _family_format(ctx, _PHONE_FORMATS, fields, "phone")


def _short_number_fields(rng: random.Random) -> dict[str, str]:
    return {"p1": str(rng.randint(1, 9)), "p4": _any_digits(rng, 4), "p5": _digits(rng, 5)}


def _slot_pager(ctx: _Context) -> list[Part]:
    return _format(ctx, _PAGER_FORMATS[ctx.split], _short_number_fields(ctx.rng), "phone")


def _slot_extension(ctx: _Context) -> list[Part]:
    return _format(ctx, _EXTENSION_FORMATS[ctx.split], _short_number_fields(ctx.rng), "phone")


def _slot_email(ctx: _Context) -> list[Part]:
    rng, vocabulary = ctx.rng, ctx.vocabulary
    first = _ascii_lower(rng.choice(vocabulary.first_names))
    fields = {
        "first": first,
        "f": first[:1],
        "last": _ascii_lower(rng.choice(vocabulary.surnames)),
        "nn": str(rng.randint(1, 99)),
    }
    local = rng.choice(_EMAIL_LOCAL_PARTS[ctx.split]).format(**fields)
    return [(f"{local}@{rng.choice(vocabulary.email_domains)}", "email")]


_MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"  # Medicare beneficiary identifiers skip S, L, O, I, B, Z


def _medicare_identifier(rng: random.Random) -> str:
    """A Medicare beneficiary identifier shape: 1EG4-TE5-MK73."""

    def alnum() -> str:
        return rng.choice(_MBI_LETTERS + "0123456789")

    def letter() -> str:
        return rng.choice(_MBI_LETTERS)

    return (
        f"{rng.randint(1, 9)}{letter()}{alnum()}{rng.randint(0, 9)}-"
        f"{letter()}{alnum()}{rng.randint(0, 9)}-{letter()}{letter()}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    )


def _nhs_number(rng: random.Random) -> str:
    """A ten-digit NHS number with a valid modulus-11 check digit, spaced 3-3-4."""
    while True:
        body = [rng.randint(0, 9) for _ in range(9)]
        body[0] = rng.randint(4, 9)
        check = 11 - sum(d * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            digits = "".join(map(str, body)) + str(check)
            return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def _slot_id(kind: str) -> Callable[[_Context], list[Part]]:
    def fill(ctx: _Context) -> list[Part]:
        rng = ctx.rng
        fields = {f"d{n}": _digits(rng, n) for n in range(2, 11)}
        fields["d6"] = _any_digits(rng, 6) if kind == "mrn" else fields["d6"]
        fields["ssn3"] = f"{rng.randint(1, 665):03d}"
        fields["mbi"] = _medicare_identifier(rng) if kind == "insurance" else ""
        fields["nhs"] = _nhs_number(rng) if kind == "insurance" else ""
        return _format(ctx, _ID_FORMATS[ctx.split][kind], fields, "id")

    return fill


_AGE_REFERENCE_YEAR = 2024  # a date of birth's year is this year less the age, less one


def _age_value(rng: random.Random, identifier: bool) -> int:
    """An age over 89 (an identifier), or one of 89 and under, weighted towards the eighties."""
    if identifier:
        return rng.randint(90, 99) if rng.random() < 0.8 else rng.randint(100, 106)
    return rng.randint(80, 89) if rng.random() < 0.25 else rng.randint(18, 89)


def _slot_age(form: str, identifier: bool) -> Callable[[_Context], list[Part]]:
    """Ages over 89 are identifiers; younger ages (and 'XXXX') are planted unlabelled."""

    def fill(ctx: _Context) -> list[Part]:
        rng = ctx.rng
        patterns = _AGE_FORMATS[ctx.split][form]
        age = _age_value(rng, identifier)
        n = str(age)
        if not identifier and form == "adj" and rng.random() < 0.15:  # de-identified, IU style
            n = "XXXX"
            patterns = tuple(p for p in patterns if "{words}" not in p)
        fields = {"n": n, "words": _number_words(age), "sex": rng.choice("FM")}
        return _format(ctx, patterns, fields, "age" if identifier else None)

    return fill


def _slot_dob_with_age(identifier: bool) -> Callable[[_Context], list[Part]]:
    """A date of birth and the age it gives; the age is an identifier only over 89."""

    def fill(ctx: _Context) -> list[Part]:
        age = _age_value(ctx.rng, identifier)
        birth_year = _AGE_REFERENCE_YEAR - age
        date = _format(
            ctx,
            _DOB_FORMATS[ctx.split],
            _date_fields(ctx, (birth_year - 1, birth_year - 1)),
            "date",
        )
        age_parts = _format(
            ctx, _DOB_AGE_FORMATS[ctx.split], {"n": str(age)}, "age" if identifier else None
        )
        return [*date, *age_parts]

    return fill


def _name_fields(ctx: _Context) -> dict[str, str]:
    rng, vocabulary = ctx.rng, ctx.vocabulary
    last = rng.choice(vocabulary.surnames)
    first = rng.choice(vocabulary.first_names)
    return {
        "first": first,
        "fi": first[:1],
        "last": last,
        "LAST": last.upper(),
        "i": rng.choice("ABCDEFGHJKLMNPRSTW"),
        "title": rng.choice(vocabulary.doctor_titles),
        "ptitle": rng.choice(vocabulary.patient_titles),
        "cred": rng.choice(vocabulary.credentials),
    }


def _slot_name(form: str) -> Callable[[_Context], list[Part]]:
    def fill(ctx: _Context) -> list[Part]:
        return _format(ctx, _NAME_FORMATS[ctx.split][form], _name_fields(ctx), "name")

    return fill


def _slot_surname(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.surnames), "name")]


def _uk_postcode(rng: random.Random, area: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    return (
        f"{area}{rng.randint(1, 20)} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"
    )


def _slot_address(ctx: _Context) -> list[Part]:
    rng, vocabulary = ctx.rng, ctx.vocabulary
    if vocabulary.world_addresses and rng.random() < 0.45:
        return [(_fill_placeholders(rng, rng.choice(vocabulary.world_addresses)), "address")]
    us_town, state = rng.choice(vocabulary.us_towns)
    uk_town, area = rng.choice(vocabulary.uk_towns)
    au_town, au_state = rng.choice(vocabulary.au_towns)
    number = rng.randint(1, 99) if rng.random() < 0.6 else rng.randint(100, 9999)
    fields = {
        "num": str(number),
        "dir": rng.choice(vocabulary.street_directions),
        "street": rng.choice(vocabulary.streets),
        "type": rng.choice(vocabulary.street_types),
        "us_town": us_town,
        "st": state,
        "zip": _any_digits(rng, 5),
        "uk_town": uk_town,
        "postcode": _uk_postcode(rng, area),
        "au_town": au_town,
        "au_st": au_state,
        "au_pc": _AU_POSTCODE_DIGIT[au_state] + _any_digits(rng, 3),
        "unit": str(rng.randint(1, 24)),
        "letter": rng.choice("ABCD"),
    }
    return _family_format(ctx, _ADDRESS_FORMATS, fields, "address")


def _slot_city(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.cities)[0], "geo")]


def _slot_city_country(ctx: _Context) -> list[Part]:
    city, country = ctx.rng.choice(ctx.vocabulary.cities)
    fields = {"city": city, "country": country, "COUNTRY": country.upper()}
    return _format(ctx, _CITY_COUNTRY_FORMATS[ctx.split], fields, "geo")


def _slot_country(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.countries), "geo")]


def _slot_region(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.regions)[0], "geo")]


def _slot_region_country(ctx: _Context) -> list[Part]:
    region, country = ctx.rng.choice(ctx.vocabulary.regions)
    return [(region, "geo"), (", ", None), (country, "geo")]


def _slot_us_state(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.us_states)[0], "geo")]


def _slot_town(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.towns), "geo")]


def _slot_institution(ctx: _Context) -> list[Part]:
    return [(ctx.rng.choice(ctx.vocabulary.institutions), "institution")]


def _plain(make: Callable[[random.Random], str]) -> Callable[[_Context], list[Part]]:
    """A slot whose text is never an identifier."""

    def fill(ctx: _Context) -> list[Part]:
        return [(make(ctx.rng), None)]

    return fill


def _dimensions(rng: random.Random) -> str:
    a, b = sorted((rng.uniform(0.6, 7.5), rng.uniform(0.5, 6.0)), reverse=True)
    if rng.random() < 0.3:
        return f"{round(a * 10)} x {round(b * 10)} mm"
    return f"{a:.1f} x {b:.1f} cm"


def _vertebral_level(rng: random.Random) -> str:
    return rng.choice((f"T{rng.randint(1, 12)}", f"C{rng.randint(3, 7)}", f"L{rng.randint(1, 5)}"))


def _disc_level(rng: random.Random) -> str:
    region, top = rng.choice(
        (("C", rng.randint(3, 6)), ("T", rng.randint(4, 11)), ("L", rng.randint(1, 4)))
    )
    return rng.choice(
        (f"{region}{top}-{top + 1}", f"{region}{top}-{region}{top + 1}", f"{region}{top}/{top + 1}")
    )


def _rib(rng: random.Random) -> str:
    return f"{rng.choice(('posterior', 'anterior', 'lateral'))} {_ordinal(rng.randint(2, 11))} rib"


# Holdout's look-alikes: clinical numbers and capitalised words that a scrubber may take for
# dates, times, telephone numbers, identifiers or names.
_DRUGS = _entries(
    """apixaban; Tazocin; co-amoxiclav; pembrolizumab (Keytruda); nitrofurantoin; bleomycin;
    Clexane; rifampicin; Entresto; nivolumab; dexamethasone; Augmentin"""
)
_DEVICES = _entries(
    """Medtronic Micra leadless pacemaker; Bard PowerPICC; Rocket indwelling pleural catheter;
    Blake drain; Portex tracheostomy tube; MitraClip; Amplatzer septal occluder;
    Edwards SAPIEN valve; Arrow triple-lumen CVC; Corflo feeding tube"""
)
_CARE_UNITS = ("ICU", "A&E", "HDU", "CCU", "ED", "Resus")


def _observation(rng: random.Random) -> str:
    return rng.choice(
        (
            f"BP {rng.randint(85, 180)}/{rng.randint(45, 105)}",
            f"GCS {rng.randint(9, 15)}/15",
            f"SpO2 {rng.randint(84, 97)}% on {rng.randint(1, 6)} L",
            f"RR {rng.randint(16, 34)}",
            f"HR {rng.randint(48, 140)}",
            f"temp 38.{rng.randint(0, 9)}",
        )
    )


def _ward_code(rng: random.Random) -> str:
    return f"{rng.randint(1, 30)}{rng.choice(('', 'A', 'B', 'C'))}"


def _duration(rng: random.Random) -> str:
    """UK shorthand for days, weeks and months: '5/7', '3/52', '2/12'."""
    return rng.choice(
        (f"{rng.randint(2, 6)}/7", f"{rng.randint(2, 8)}/52", f"{rng.randint(2, 11)}/12")
    )


_SIDES = ("right", "left")
_LOBES = (
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
    "lingula",
)

_Slot = Callable[[_Context], list[Part]]
_SLOTS: dict[str, _Slot] = {
    # identifiers
    "date": _slot_date,
    "month_year": _slot_month_year,
    "time": _slot_time,
    "phone": _slot_phone,
    "pager": _slot_pager,
    "ext": _slot_extension,
    "email": _slot_email,
    "mrn": _slot_id("mrn"),
    "acc": _slot_id("acc"),
    "pid": _slot_id("pid"),
    "ssn": _slot_id("ssn"),
    "insurance": _slot_id("insurance"),
    "bare_id": _slot_id("bare"),
    "age_adj": _slot_age("adj", identifier=True),
    "age_pred": _slot_age("pred", identifier=True),
    "age_sex": _slot_age("sex", identifier=True),
    "dr": _slot_name("doctor"),
    "signature": _slot_name("signature"),
    "patient": _slot_name("patient"),
    "surname": _slot_surname,
    "address": _slot_address,
    "city": _slot_city,
    "city_country": _slot_city_country,
    "country": _slot_country,
    "region": _slot_region,
    "region_country": _slot_region_country,
    "us_state": _slot_us_state,
    "town": _slot_town,
    "institution": _slot_institution,
    # holdout's own identifier slots
    "day": _slot_day,
    "dob": _slot_dob,
    "age_dob": _slot_dob_with_age(identifier=True),
    "stamp": _slot_stamp,
    "natid": _slot_id("natid"),
    "clinician": _slot_name("clinician"),
    # look-alikes, never identifiers
    "young_adj": _slot_age("adj", identifier=False),
    "young_pred": _slot_age("pred", identifier=False),
    "young_sex": _slot_age("sex", identifier=False),
    "year": _plain(lambda rng: str(rng.randint(1995, 2023))),
    "side": _plain(lambda rng: rng.choice(_SIDES)),
    "lobe": _plain(lambda rng: rng.choice(_LOBES)),
    "dims": _plain(_dimensions),
    "cm": _plain(lambda rng: f"{rng.uniform(1.0, 7.5):.1f}"),
    "mm": _plain(
        lambda rng: rng.choice((f"{rng.randint(3, 9)} mm", f"{rng.uniform(1, 3):.1f} mm"))
    ),
    "level": _plain(_vertebral_level),
    "disc": _plain(_disc_level),
    "rib": _plain(_rib),
    "fr": _plain(lambda rng: str(rng.choice((8, 10, 12, 14, 16, 18, 20, 24, 28)))),
    "pct": _plain(
        lambda rng: rng.choice((f"{rng.randint(2, 9) * 10}%", f"{rng.randint(2, 9) * 10} percent"))
    ),
    "frac": _plain(lambda rng: rng.choice(("1/3", "2/3", "1/2", "3/4", "1/4"))),
    "ratio": _plain(lambda rng: f"0.{rng.randint(52, 72)}"),
    "deg": _plain(lambda rng: rng.choice(("30", "45", "60", "90"))),
    # holdout's look-alikes
    "young_dob": _slot_dob_with_age(identifier=False),  # the date of birth is still a date
    "age_band": _plain(lambda rng: rng.choice((">90", "90+", "over 90"))),
    "drug": _plain(lambda rng: rng.choice(_DRUGS)),
    "device": _plain(lambda rng: rng.choice(_DEVICES)),
    "care_unit": _plain(lambda rng: rng.choice(_CARE_UNITS)),
    "ward": _plain(lambda rng: f"Ward {_ward_code(rng)}"),
    "ward_code": _plain(_ward_code),
    "grade": _plain(lambda rng: f"Grade {rng.randint(1, 4)}"),
    "zone": _plain(lambda rng: f"Zone {rng.randint(1, 3)}"),
    "lungrads": _plain(lambda rng: f"Lung-RADS {rng.choice(('2', '3', '4A', '4B', '4X'))}"),
    "qtc": _plain(lambda rng: f"QTc {rng.randint(400, 520)} ms"),
    "obs": _plain(_observation),
    "duration": _plain(_duration),
    "kvp": _plain(
        lambda rng: f"{rng.choice((85, 90, 100, 110, 120))} kVp, {rng.uniform(1, 4):.1f} mAs"
    ),
    "cd4": _plain(lambda rng: str(rng.randint(40, 900))),
}
_SLOT_CATEGORY = {
    **dict.fromkeys(("date", "month_year", "day", "dob", "young_dob"), "date"),
    "time": "time",
    **dict.fromkeys(("phone", "pager", "ext"), "phone"),
    "email": "email",
    **dict.fromkeys(("mrn", "acc", "pid", "ssn", "insurance", "bare_id", "natid"), "id"),
    **dict.fromkeys(("age_adj", "age_pred", "age_sex"), "age"),
    **dict.fromkeys(("dr", "signature", "patient", "surname", "clinician"), "name"),
    "address": "address",
    **dict.fromkeys(
        ("city", "city_country", "country", "region", "region_country", "us_state", "town"), "geo"
    ),
    "institution": "institution",
}
# Identifier slots and the categories of the spans each plants ("Lagos, Nigeria" is two).
_SLOT_CATEGORIES: dict[str, tuple[str, ...]] = {
    **{slot: (category,) for slot, category in _SLOT_CATEGORY.items()},
    "city_country": ("geo", "geo"),
    "region_country": ("geo", "geo"),
    "stamp": ("date", "time"),
    "age_dob": ("date", "age"),
}

# ---------------------------------------------------------------------------------------------
# Sentence templates. Roles place a sentence in the note: header and footer lines, then the
# history, technique, comparison, findings and impression sections. No template appears in both
# splits.

_PHI_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "dev": (
        # date
        ("comparison", "Compared with the study of {date}."),
        ("comparison", "Chest radiograph dated {date} reviewed for comparison."),
        ("comparison", "Prior radiograph {date} showed a similar appearance."),
        ("history", "Admitted on {date} with dyspnoea."),
        ("findings", "The {side} effusion has increased since {date}."),
        ("impression", "Improved compared with {date}."),
        ("history", "Symptoms since {month_year}."),
        ("comparison", "Last CT chest in {month_year} showed no nodules."),
        ("header", "Exam date: {date}"),
        ("footer", "Dictated {date}"),
        ("history", "Right hemicolectomy {month_year}, now febrile."),
        # time
        ("header", "Study time: {time}"),
        ("impression", "Result telephoned to the ward at {time}."),
        ("footer", "Signed {date} {time}"),
        (
            "findings",
            "Film taken at {time} after line insertion shows the tip at the cavoatrial junction.",
        ),
        # phone
        ("impression", "Please call the reading room on {phone} with queries."),
        ("footer", "Radiology department: {phone}"),
        ("impression", "Results discussed via {pager}."),
        ("footer", "Queries: reporting desk, {ext}."),
        ("history", "Patient contact number {phone}."),
        ("header", "Referrer tel: {phone}"),
        # email
        ("footer", "Queries to {email}."),
        ("impression", "A copy of this report has been sent to {email}."),
        ("header", "Referrer e-mail: {email}"),
        # id
        ("header", "MRN: {mrn}"),
        ("header", "MRN {mrn}   Accession # {acc}"),
        ("header", "Patient ID {pid}"),
        ("history", "Request form lists SSN {ssn}."),
        ("header", "Medicare no. {insurance}"),
        ("comparison", "Compared with accession no. {acc}."),
        ("header", "Order number {bare_id}"),
        ("footer", "Accession # {acc}"),
        # age
        ("history", "{age_adj} man with fever and cough."),
        ("history", "{age_adj} woman, fall, ?rib fractures."),
        ("history", "{age_sex} with SOB."),
        ("history", "Nursing home resident, {age_pred}, increasing confusion."),
        ("history", "{age_adj} female with known {side} lung cancer."),
        # name
        ("impression", "Findings discussed with {dr} at {time}."),
        ("footer", "Electronically signed by: {signature}"),
        ("footer", "Attending radiologist: {surname}"),
        ("history", "Referred by {dr} for pre-operative assessment."),
        ("history", "Request from {dr}, respiratory team."),
        ("header", "Patient: {patient}"),
        ("impression", "{dr} aware."),
        ("impression", "Reviewed with {dr} at the MDT."),
        ("impression", "Findings discussed with {dr} by telephone at {time} on {date}."),
        # address
        ("header", "Address: {address}"),
        ("history", "Lives at {address} with her daughter."),
        ("footer", "Report copy posted to {address}."),
        # geo
        ("history", "Recently returned from {city_country} with fever."),
        ("history", "Transferred from an outside hospital in {us_state}."),
        ("history", "Lives in {town}, ex-miner."),
        ("history", "Travel history to {city}."),
        ("history", "Holiday in {country} two weeks ago, now cough."),
        ("history", "From rural {region}, ?melioidosis."),
        ("history", "Recently moved from {region_country}."),
        ("history", "{age_adj} man visiting from {city}."),
        # institution
        ("comparison", "Compared with outside films from {institution}."),
        ("history", "Transferred from {institution} for further management."),
        ("header", "Referring hospital: {institution}"),
        ("impression", "Recommend follow-up at the {institution} chest clinic."),
        ("findings", "PICC placed at {institution} on {date} terminates in the SVC."),
    ),
    "test": (
        # date
        ("comparison", "Previous film {date} for comparison."),
        ("comparison", "Compared to imaging performed {date}."),
        ("history", "Presented to ED {date}, fever."),
        ("impression", "Resolved since the examination of {date}."),
        ("findings", "New since {date}: small {side} basal effusion."),
        ("history", "Diagnosed {month_year}."),
        ("history", "Chemotherapy started in {month_year}."),
        ("header", "Date of exam: {date}"),
        ("footer", "Report authorised {date}"),
        ("comparison", "CXR of {date} reviewed."),
        # time
        ("header", "Time acquired: {time}"),
        ("impression", "Urgent finding relayed by phone at {time}."),
        ("footer", "Verified {date} at {time}"),
        ("findings", "Repeat film at {time} shows the ETT withdrawn by 2 cm."),
        # phone
        ("footer", "For queries ring {phone}."),
        ("impression", "Duty radiologist {pager}."),
        ("footer", "Contact the imaging department on {phone}, {ext}."),
        ("history", "Next of kin telephone: {phone}."),
        ("header", "Ward phone {phone}"),
        ("impression", "Please phone {ext} to arrange the CT."),
        # email
        ("footer", "Send images to {email}."),
        ("footer", "Correspondence: {email}"),
        ("impression", "cc {email}"),
        # id
        ("header", "Hospital No: {mrn}"),
        ("header", "Unit No. {mrn}  Acc no {acc}"),
        ("header", "Pt ID: {pid}"),
        ("history", "Social Security No. {ssn} noted on referral."),
        ("header", "NHS Number {insurance}"),
        ("comparison", "See study ref {acc}."),
        ("header", "Film number {bare_id}"),
        ("footer", "Record number {mrn}"),
        # age
        ("history", "{age_adj} gentleman, breathless."),
        ("history", "{age_adj} lady with a fall."),
        ("history", "{age_sex}, cough for 3 weeks."),
        ("history", "Frail, {age_pred}, from a care home."),
        ("history", "Patient is {age_pred}; new oxygen requirement."),
        # name
        ("impression", "Discussed with {dr} (on call) at {time}."),
        ("footer", "Reported by: {signature}"),
        ("footer", "Consultant radiologist: {surname}"),
        ("history", "Referring clinician: {dr}."),
        ("header", "Patient name: {patient}"),
        ("footer", "Verified by {signature}"),
        ("impression", "{dr} informed."),
        ("history", "Seen in clinic by {dr}; ?ILD."),
        ("impression", "Conveyed to {dr} at {time} on {date}."),
        # address
        ("header", "Home address: {address}"),
        ("history", "Resides at {address}."),
        ("footer", "Letter to GP at {address}."),
        # geo
        ("history", "Returning traveller from {city_country}, febrile."),
        ("history", "Inter-hospital transfer from {us_state}."),
        ("history", "Resident of {town}."),
        ("history", "Visited {city} last month."),
        ("history", "Recent trip to {country}; ?TB."),
        ("history", "Farm worker from rural {region}."),
        ("history", "Emigrated from {country} in {year}."),
        ("history", "Born in {region_country}, heavy smoker."),
        # institution
        ("comparison", "Outside imaging from {institution} reviewed."),
        ("history", "Inter-hospital transfer from {institution}."),
        ("header", "Referring site: {institution}"),
        ("impression", "Follow-up arranged at {institution}."),
        ("findings", "Pacemaker inserted at {institution} in {year}, leads intact."),
    ),
    "holdout": (
        # date
        ("header", "Date of study: {date}"),
        ("header", "Admitted: {date}"),
        ("header", "Req. date {date}   Rep. date {date}"),
        ("header", "D.O.B. {dob}"),
        ("comparison", "Correlated with the {institution} film dated {date}."),
        ("comparison", "Previous CXR done on {date} - no significant interval change."),
        ("comparison", "Old films of {date} and {month_year} reviewed alongside."),
        ("comparison", "Cf. {date}: effusion smaller."),
        ("history", "Intubated in {care_unit} on {date}; {qtc} on the last ECG."),
        ("history", "Started apixaban in {month_year} for AF."),
        ("history", "Chest drain inserted {day}, ?position."),
        ("history", "Discharged {date}, re-presented to A&E with rigors."),
        ("history", "K/c/o DM, HTN. Fever x {duration}, seen in OPD {date}."),
        ("history", "Known case of pulmonary TB, completed ATT {month_year}."),
        ("findings", "Drain removed since the film of {date}; no residual pneumothorax."),
        ("findings", "Pacing wire repositioned {day}, tip now at the RV apex."),
        ("impression", "Repeat film suggested on or after {date}."),
        ("footer", "D: {date}  T: {date}"),
        ("footer", "Transcribed {date}, typist 14."),
        ("addendum", "ADDENDUM ({date}): CT confirms a {mm} nodule; see separate report."),
        # time
        ("header", "Acquired: {time}"),
        ("header", "Time of exam {time}, portable."),
        ("findings", "Film at {time} shows the NG tube coiled in the oesophagus."),
        ("impression", "Verbal report given at {time}."),
        ("history", "Arrived in {care_unit} at {time}, {obs}."),
        ("impression", "Critical result phoned to Sr {surname} on {ward} at {time}."),
        ("footer", "Report finalised {stamp}"),
        ("addendum", "Addendum {stamp}: discussed with the surgical registrar."),
        # phone
        ("footer", "Reporting room: {phone}"),
        ("footer", "Radiology secretaries on {phone} (Mon-Fri)."),
        ("impression", "If concerned contact the duty radiologist, {pager}."),
        ("footer", "Switchboard {phone}, then {ext}."),
        ("header", "Contact no. {phone}"),
        ("history", "NOK (daughter) mob. {phone}."),
        ("header", "Referrer ph: {phone}   Fax: {phone}"),
        ("impression", "For urgent queries ring {ext}."),
        ("footer", "Bookings {phone} | Enquiries {email}"),
        # email
        ("footer", "Report e-mailed to {email}."),
        ("header", "Requesting clinician e-mail: {email}"),
        ("history", "Patient asked for results by e-mail ({email})."),
        ("footer", "Secure mail: {email}"),
        ("copy", "c.c. GP practice via {email}"),
        # id
        ("header", "Hosp No: {mrn}"),
        ("header", "UR {mrn}"),
        ("header", "CR No. {mrn}   IP No. {pid}"),
        ("header", "UHID: {pid}"),
        ("header", "Reg. No. {mrn}"),
        ("header", "M.R. No. {mrn}"),
        ("header", "RIS no. {acc}"),
        ("header", "Acc#{acc}"),
        ("header", "{natid}"),
        ("header", "Funding: {insurance}"),
        ("history", "Identity confirmed at registration ({natid})."),
        ("history", "Uninsured until last month; now {insurance}."),
        ("comparison", "See also exam no. {acc}."),
        ("footer", "Job no. {bare_id}"),
        # age
        ("history", "{age_adj} retired teacher, SOB on exertion."),
        ("history", "{age_sex}, fall at home, ?#NOF, pre-op film."),
        ("history", "Very elderly ({age_pred}), for comfort care."),
        ("history", "Patient {age_pred}, chronic smoker, cough x {duration}."),
        ("history", "{age_adj} from a residential facility, aspiration suspected."),
        ("history", "{age_adj} with {obs}; ?sepsis."),
        ("header", "Age/Sex: {age_sex}"),
        ("header", "D.O.B.: {age_dob}"),
        ("header", "DOB {young_dob}"),
        # name
        ("header", "Name: {patient}"),
        ("header", "PATIENT:  {patient}"),
        ("header", "Consultant: {dr}"),
        ("header", "Referrer: {dr}, {institution}"),
        ("header", "Ref: {dr}"),
        ("header", "Cons: {surname}"),
        ("footer", "Reported by {signature}\nConsultant Radiologist"),
        ("footer", "Dictated by: {clinician}"),
        ("footer", "Verified electronically by {signature} at {time}"),
        ("footer", "{clinician}\nConsultant Radiologist\nMCI Reg. No. {bare_id}"),
        ("copy", "c.c. {dr}, {institution}"),
        ("copy", "cc: {clinician} (GP)"),
        ("impression", "Discussed with {dr} (ortho reg) at {time}."),
        ("impression", "Findings relayed to {clinician}, nurse in charge, {ward}."),
        ("history", "Under the care of {dr}."),
        ("history", "Collateral history from her son, {patient}."),
        ("addendum", "Addendum by {dr}: the opacity is a nipple shadow on a repeat with markers."),
        # address
        ("header", "Res. address: {address}"),
        ("history", "Lives alone at {address}; found on the floor by a neighbour."),
        ("copy", "Copy to the GP surgery, {address}."),
        ("history", "From the aged-care facility at {address}."),
        ("header", "Postal: {address}"),
        # geo
        ("history", "Just back from {city_country}; fever and myalgia."),
        ("history", "Flown in from {us_state} by the retrieval service."),
        ("history", "Farmer near {town}, exposed to grain dust."),
        ("history", "Worked in {city} until {year} as a miner."),
        ("history", "Visiting relatives in {country}; cough x {duration}."),
        ("history", "{region} resident, ?hydatid cyst."),
        ("history", "Originally from {region_country}; BCG status unknown."),
        ("history", "Refugee from {country}, screening film."),
        ("history", "Cruise stop in {city}, now ?legionella."),
        # institution
        ("comparison", "Outside CXR from {institution} uploaded to PACS."),
        ("history", "Retrieved from {institution} by the transfer team."),
        ("header", "Referring facility - {institution}"),
        ("impression", "To be reviewed in the respiratory clinic at {institution}."),
        ("findings", "Port inserted at {institution}, tip in the right atrium."),
        ("footer", "{institution} Department of Medical Imaging"),
        ("header", "{institution} - Department of Radiology"),
    ),
}

_PROSE: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "history": (
            "Shortness of breath.",
            "Fever, productive cough. ?Pneumonia.",
            "{young_adj} man with chest pain.",
            "Post line insertion.",
            "{young_adj} woman, known {side} lung cancer, follow-up.",
            "Dr. XXXX requested repeat imaging.",
            "Smoker since {year}.",
            "Patient sedated; lead apron used.",
            "Chest pain radiating to the back, ?dissection.",
            "Desaturation on the ward.",
            "{young_sex} with haemoptysis.",
            "Known COPD, on home oxygen since {year}.",
        ),
        "technique": (
            "PA and lateral chest radiographs.",
            "AP portable view, semi-erect.",
            "Mobile AP chest radiograph at {deg} degrees.",
            "Single frontal view.",
        ),
        "comparison": (
            "Compared with the prior study.",
            "Prior study of unknown date.",
            "None available.",
            "Chest radiograph from {year}.",
            "Prior CT chest from {year}.",
            "XXXX, XXXX.",
        ),
        "findings": (
            "The heart is normal in size.",
            "Normal heart size and mediastinal contours.",
            "Small {side} pleural effusion with adjacent basal atelectasis.",
            "There is a {dims} mass in the {lobe}.",
            "A {mm} nodule projects over the {side} {rib}.",
            "Endotracheal tube tip is {cm} cm above the carina.",
            "{side} internal jugular central venous catheter terminates in the lower SVC.",
            "Nasogastric tube courses below the diaphragm, tip in the stomach.",
            "Moderate cardiomegaly, cardiothoracic ratio {ratio}.",
            "Kerley B lines and upper lobe diversion suggest interstitial oedema.",
            "Swan-Ganz catheter tip in the right main pulmonary artery.",
            "Patchy consolidation in the {lobe}. May represent atelectasis or early pneumonia.",
            "No pneumothorax.",
            "Mild degenerative change of the thoracic spine with anterior osteophytes at {level}.",
            "Old healed fracture of the {side} {rib}.",
            "Dobhoff tube tip projects over the gastric body.",
            "Wedge-shaped peripheral opacity in the {lobe}, possibly a Hampton hump.",
            "Opacification of the lower {frac} of the {side} hemithorax.",
            "Sternotomy wires and a left-sided pacemaker with leads in the right atrium and ventricle.",
            "Impella device in expected position.",
            "Calcified granuloma in the lingula, unchanged since {year}.",
            "Clear lungs bilaterally.",
            "Pleurx catheter in the {side} pleural space, coiled at the base.",
            "Degenerative disc space narrowing at {disc}.",
            "Mild compression deformity of the {level} vertebral body, Grade 2, stable.",
            "Costophrenic angles are sharp.",
            "The patient is rotated to the {side}, limiting assessment.",
            "Hyperinflated lungs with flattened hemidiaphragms, consistent with COPD.",
            "{fr}F pigtail catheter at the {side} base.",
            "Bibasal subsegmental atelectasis.",
            "Azygos lobe fissure noted, a normal variant.",
            "Thin-walled cavity measuring {dims} in the {lobe}.",
            "Aortic knuckle calcification.",
            "Mobile chest radiograph: lines and tubes as described.",
            "Approximately {pct} of the {side} lung is collapsed.",
            "Heart size is at the upper limit of normal. Dr. XXXX noted cardiomegaly in {year}.",
        ),
        "impression": (
            "No acute cardiopulmonary abnormality.",
            "{side} lower lobe pneumonia.",
            "Lines and tubes in satisfactory position.",
            "Stable {side} pleural effusion.",
            "Interval improvement compared with the prior study.",
            "Findings may represent early pulmonary oedema.",
            "Recommend CT chest per Fleischner Society guidelines.",
            "Reading room consultation available on request.",
            "Amiodarone lung toxicity is a differential.",
            "May represent atelectasis; suggest follow-up film after Lasix.",
        ),
    },
    "test": {
        "history": (
            "SOB.",
            "Cough and fever, ?LRTI.",
            "{young_adj} lady, chest pain.",
            "Post-op day 2.",
            "Known metastatic breast cancer since {year}.",
            "Referred by Dr. XXXX.",
            "XXXX XXXX, ex-smoker.",
            "Lead shielding applied.",
            "Pleuritic pain, raised D-dimer.",
            "Increasing oxygen requirement overnight.",
            "{young_sex}, weight loss.",
            "Asbestos exposure in the 1970s, shipyard worker.",
        ),
        "technique": (
            "PA and lateral views obtained.",
            "Portable AP supine.",
            "Mobile radiograph, patient semi-erect at {deg} degrees.",
            "PA erect.",
        ),
        "comparison": (
            "Compared with the previous examination.",
            "No prior imaging available.",
            "Outside study, date unknown.",
            "Prior from {year}.",
            "Comparison made to the prior study.",
        ),
        "findings": (
            "Cardiac silhouette within normal limits.",
            "Cardiomediastinal contours are normal.",
            "Moderate {side} effusion layering posteriorly.",
            "{dims} spiculated lesion in the {lobe}.",
            "Punctate {mm} calcified nodule overlying the {side} {rib}.",
            "ETT terminates {cm} cm from the carina.",
            "Right PICC tip at the cavoatrial junction.",
            "NG tube tip beyond the GE junction.",
            "Enlarged cardiac silhouette (CTR {ratio}).",
            "Westermark sign: oligaemia of the {side} lung.",
            "Kerley A lines with peribronchial cuffing.",
            "Airspace opacity in the {lobe}, may reflect aspiration.",
            "May reflect early consolidation in the {lobe}.",
            "No pneumothorax or free subdiaphragmatic gas.",
            "Spondylotic changes at {disc}.",
            "Healing fracture of the {side} {rib}.",
            "Golden S sign: right upper lobe collapse around a hilar mass.",
            "Luftsichel sign consistent with left upper lobe collapse.",
            "Hickman line tip in the right atrium.",
            "Port-a-Cath via the {side} subclavian vein, tip at the SVC.",
            "LVAD (HeartMate 3) and AICD in situ.",
            "Watchman device projects over the left atrial appendage.",
            "Opacification involving approximately {pct} of the {side} hemithorax.",
            "Pleural thickening over the upper {frac} of the {side} chest wall.",
            "Wedge compression of {level}, unchanged since {year}.",
            "Clear lungs. No focal consolidation.",
            "Chilaiditi sign: colon interposed beneath the right hemidiaphragm.",
            "{fr} Fr chest drain at the {side} base, tip towards the apex.",
            "Hyperexpanded lungs with 7 anterior ribs above the diaphragm.",
            "Diffuse reticulation, ILO profusion grade 2.",
            "Normal mediastinal width.",
            "Elevated {side} hemidiaphragm, 3 cm above the contralateral side.",
            "Surgical clips at the gastro-oesophageal junction.",
            "Cavitating lesion {dims} in the {lobe}, ?TB.",
            "Tracheostomy tube {cm} cm above the carina.",
            "Normal appearances otherwise. Dr. XXXX's note of {year} mentions a nodule.",
        ),
        "impression": (
            "No acute findings.",
            "Appearances in keeping with {side} basal consolidation.",
            "Satisfactory line and tube positions.",
            "Unchanged appearances since the prior study.",
            "Features may represent fluid overload.",
            "Follow-up CT in 3 months per Fleischner criteria.",
            "Consider clinical correlation.",
            "Methotrexate pneumonitis cannot be excluded.",
            "Normal chest radiograph.",
            "Furosemide response should be assessed on a repeat film.",
        ),
    },
    "holdout": {
        "header": (
            "Modality: CR",
            "Ward: {ward_code}",
            "Priority: P2 (urgent)",
            "Location: {care_unit}",
            "Study requested: XR chest, 1 view",
            "Status: FINAL",
            "Source: {care_unit}, isolation precautions",
            "Age/Sex: {young_sex}",
            "Exposure: {kvp}",
            "Patient category: inpatient",
        ),
        "history": (
            "SOB on exertion, bilateral pitting oedema.",
            "Post CABG day 1, drains in situ.",
            "Febrile neutropenia on {drug}.",
            "Reduced air entry L base. ?collapse ?effusion.",
            "{young_adj} smoker, 40 pack-years, haemoptysis.",
            "Known case of bronchiectasis, infective exacerbation.",
            "HIV positive on ART, CD4 {cd4}. ?PTB.",
            "RTA, chest wall tenderness, {obs}.",
            "Pre-op assessment for TKR.",
            "Dr XXXX asks: line position?",
            "Age {age_band}, frail, nursing-home resident.",
            "Immigration screening, asymptomatic.",
            "Cough x {duration}, night sweats, weight loss.",
            "Bath chair transfer; unable to stand for a PA view.",
            "On {drug} since {year}; new dry cough.",
            "MRC {grade} dyspnoea.",
        ),
        "technique": (
            "Single AP supine film.",
            "PA erect and left lateral.",
            "AP sitting, mobile unit, tilted {deg} degrees.",
            "Erect PA, full inspiration, good penetration.",
            "Mobile film in {care_unit}.",
        ),
        "comparison": (
            "No old films on PACS.",
            "Previous films not available at the time of reporting.",
            "Correlated with CT of {year}.",
            "Compared with the outside CD (date not stated).",
            "XXXX films compared.",
        ),
        "findings": (
            "Both CP angles are clear.",
            "Cardiac size is within normal limits; CTR {ratio}.",
            "No obvious bony injury; the {rib} is intact.",
            "{device} in situ.",
            "Tip of the {device} projects over the SVC.",
            "Colon gas beneath the left hemidiaphragm, not free air.",
            "Split pleura sign on the accompanying CT supports empyema.",
            "Buffalo chest after sternotomy: bilateral pneumothoraces.",
            "Clear lungs apart from a calcified granuloma in the {lobe}.",
            "Normal mediastinal outline; trachea central.",
            "{lungrads} nodule in the {lobe} on the screening CT, {dims}.",
            "Wedge fracture of {level} ({grade}, Genant).",
            "Airspace shadowing most marked in {zone} on the left.",
            "Degenerative change at {disc}; otherwise unremarkable spine.",
            "Rounded atelectasis next to a calcified pleural plaque.",
            "Pancoast tumour at the {side} apex eroding the {rib}.",
            "Morgagni hernia at the right cardiophrenic angle.",
            "Macklin effect: pneumomediastinum along the bronchovascular sheaths.",
            "Ghon focus in the {lobe} with calcified hilar nodes (Ranke complex).",
            "Deep sulcus sign on the {side}, supine pneumothorax.",
            "Felson silhouette sign: loss of the {side} heart border.",
            "Poland syndrome: absent {side} pectoralis major shadow.",
            "Lateral view: sternum intact, retrosternal space clear.",
            "Effusion fills the lower {frac} of the {side} hemithorax, about {pct}.",
            "{fr} Fr Corflo tube tip below the diaphragm.",
            "QT prolongation reported clinically ({qtc}); no pulmonary correlate.",
            "Mobile chest film: no pneumothorax after line insertion.",
            "Normal heart. Clear lungs.",
            "Reading of this film was delayed by a PACS outage.",
            "Unchanged since {year} apart from the {dims} density in the {lobe}.",
            "Lines: {device}; ETT {cm} cm above the carina.",
            "Swyer-James pattern: small hyperlucent {side} lung.",
        ),
        "impression": (
            "NAD.",
            "No acute cardiopulmonary process; {lungrads} follow-up per protocol.",
            "Features favour LVF; correlate with BNP.",
            "Tubes and lines acceptable.",
            "?Early consolidation {lobe} - clinical correlation advised.",
            "Suggest repeat after the {drug} course.",
            "Stable appearances.",
            "Small {side} apical pneumothorax, about {pct}.",
            "Suspicious for malignancy; urgent CT chest (2WW pathway).",
        ),
        "footer": (
            "Dictated but not read.",
            "This report has been verified electronically.",
            "Voice recognition used; please report errors to the department.",
            "I have personally reviewed the images and agree with the findings above.",
            "Report status: FINAL",
            "Not for medico-legal use without the authorised copy.",
        ),
        "addendum": (
            "ADDENDUM: on the lateral view the opacity is a nipple shadow.",
            "Addendum - correction: left, not right, lower lobe.",
            "Addendum: outside films received; appearances stable since {year}.",
        ),
        "copy": (
            "cc: GP; respiratory clinic",
            "c.c. {ward}",
            "Copies: referrer, MDT coordinator",
        ),
    },
}

_SECTION_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "history": ("HISTORY:", "INDICATION:", "CLINICAL INFORMATION:"),
        "technique": ("TECHNIQUE:", "EXAM:"),
        "comparison": ("COMPARISON:",),
        "findings": ("FINDINGS:",),
        "impression": ("IMPRESSION:",),
    },
    "test": {
        "history": ("PC:", "CLINICAL DETAILS:"),
        "technique": ("EXAMINATION:", "VIEWS:"),
        "comparison": ("COMPARISON:", "PREVIOUS:"),
        "findings": ("FINDINGS:", "REPORT:"),
        "impression": ("CONCLUSION:", "OPINION:"),
    },
}
# Holdout's labels are bare: each layout writes them its own way ("OBSERVATIONS:", "Hx -").
_HOLDOUT_SECTION_LABELS = {
    "history": (
        "Clinical notes",
        "Reason for request",
        "Clinical indication",
        "Relevant history",
        "Clinical question",
    ),
    "technique": ("Projection", "Study", "Procedure", "Protocol", "Films"),
    "comparison": ("Prior imaging", "Correlation", "Compared to", "Old films"),
    "findings": ("Observations", "Description", "Result", "Radiographic findings", "Details"),
    "impression": ("Summary", "Comment", "Interpretation", "Radiological opinion", "Assessment"),
}
_BODY_ROLES = ("history", "technique", "comparison", "findings", "impression")
# Holdout notes also have header fields, sign-off lines, addenda and copy ("cc:") lines.
_HOLDOUT_ROLES = ("header", *_BODY_ROLES, "footer", "addendum", "copy")
_CATEGORY_WEIGHTS = {category: 0.6 if category == "time" else 1.0 for category in PHI_CATEGORIES}
_CAPS_FRACTION = 0.15


@dataclass(frozen=True)
class _Template:
    key: str
    role: str
    text: str
    spans: int  # identifiers it plants
    categories: frozenset[str]
    intro: bool  # describes the patient's age: at most one per note


def _template(
    key: str,
    role: str,
    text: str,
    slot_fills: Mapping[str, _Slot] = _SLOTS,
    slot_categories: Mapping[str, tuple[str, ...]] = _SLOT_CATEGORIES,
) -> _Template:
    slots = _SLOT_RE.findall(text)
    unknown = [s for s in slots if s not in slot_fills]
    if unknown:
        raise KeyError(f"phi_corpus template {key!r}: unknown slot(s) {unknown}")
    return _Template(
        key=key,
        role=role,
        text=text,
        spans=sum(len(slot_categories.get(s, ())) for s in slots),
        categories=frozenset(c for s in slots for c in slot_categories.get(s, ())),
        intro=any(s.startswith(("age_", "young_")) for s in slots),
    )


@dataclass(frozen=True)
class _Bank:
    by_category: dict[str, tuple[_Template, ...]]
    prose: dict[str, tuple[_Template, ...]]
    slot_fills: Mapping[str, _Slot]


@cache
def _bank(split: str) -> _Bank:
    """A split's templates and the slots that fill them."""
    if split == "holdout2":
        from medrep.data import phi_holdout2  # lazily: phi_holdout2 builds on this module

        return _build_bank(
            split,
            phi_holdout2.PHI_TEMPLATES,
            phi_holdout2.PROSE,
            phi_holdout2.SLOTS,
            phi_holdout2.SLOT_CATEGORIES,
        )
    return _build_bank(split, _PHI_TEMPLATES[split], _PROSE[split], _SLOTS, _SLOT_CATEGORIES)


def _build_bank(
    split: str,
    phi_texts: Sequence[tuple[str, str]],
    prose_texts: Mapping[str, Sequence[str]],
    slot_fills: Mapping[str, _Slot],
    slot_categories: Mapping[str, tuple[str, ...]],
) -> _Bank:
    """Identifier templates whose only identifiers are ages also serve, with ages of 89 and
    under, as history (or header) prose, so young ages appear in the same contexts."""

    def template(key: str, role: str, text: str) -> _Template:
        return _template(key, role, text, slot_fills, slot_categories)

    phi = [template(f"{split}.{i}", role, text) for i, (role, text) in enumerate(phi_texts)]
    prose = {
        role: [template(f"{split}.{role}", role, text) for text in texts]
        for role, texts in prose_texts.items()
    }
    for t in phi:
        if t.categories == {"age"} and t.role in ("history", "header"):
            prose[t.role].append(template(t.key, t.role, t.text.replace("{age_", "{young_")))
    by_category = {c: tuple(t for t in phi if c in t.categories) for c in PHI_CATEGORIES}
    empty = [c for c, ts in by_category.items() if not any(t.spans == 1 for t in ts)]
    if empty:
        raise ValueError(f"phi_corpus split {split!r}: no single-identifier template for {empty}")
    prose_templates = {r: tuple(ts) for r, ts in prose.items()}
    return _Bank(by_category=by_category, prose=prose_templates, slot_fills=slot_fills)


def _render(ctx: _Context, text: str, slot_fills: Mapping[str, _Slot] = _SLOTS) -> list[Part]:
    """A template's parts with every slot filled; a sentence that opens with a slot is given a
    capital ("ninety-two-year-old" -> "Ninety-two-year-old")."""
    parts: list[Part] = []
    position = 0
    for match in _SLOT_RE.finditer(text):
        if match.start() > position:
            parts.append((text[position : match.start()], None))
        parts.extend(slot_fills[match.group(1)](ctx))
        position = match.end()
    if position < len(text):
        parts.append((text[position:], None))
    first, category = parts[0]
    if text.startswith("{") and category != "email" and first[:1].islower():
        parts[0] = (first[0].upper() + first[1:], category)
    return parts


def _choose_identifier_templates(ctx: _Context, bank: _Bank) -> list[_Template]:
    rng = ctx.rng
    budget = rng.randint(1, 4)
    categories = list(_CATEGORY_WEIGHTS)
    weights = list(_CATEGORY_WEIGHTS.values())
    chosen: list[_Template] = []
    while budget > 0:
        category = rng.choices(categories, weights)[0]
        template = rng.choice(bank.by_category[category])
        fits = template.spans <= budget and template not in chosen
        if fits and not (template.intro and any(t.intro for t in chosen)):
            chosen.append(template)
            budget -= template.spans
    return chosen


def _choose_prose(ctx: _Context, bank: _Bank, has_intro: bool) -> list[_Template]:
    """2-6 sentences of report prose, at least one of them findings."""
    rng = ctx.rng
    counts = dict.fromkeys(_BODY_ROLES, 0)
    counts["findings"] = 1
    for _ in range(rng.randint(1, 5)):
        role = rng.choices(_BODY_ROLES, (0.8, 0.3, 0.4, 2.0, 1.0))[0]
        counts[role] += 1
    for role, cap in (("technique", 1), ("comparison", 1), ("history", 2), ("impression", 2)):
        counts["findings"] += max(0, counts[role] - cap)
        counts[role] = min(counts[role], cap)
    chosen: list[_Template] = []
    for role, count in counts.items():
        options = [t for t in bank.prose[role] if not (has_intro and t.intro)]
        picked = rng.sample(options, min(count, len(options)))
        if sum(t.intro for t in picked) > 1:
            picked = [t for t in picked if not t.intro] + [next(t for t in picked if t.intro)]
        chosen.extend(picked)
    return chosen


def _join(sentences: Sequence[list[Part]], separator: str) -> list[Part]:
    parts: list[Part] = []
    for i, sentence in enumerate(sentences):
        if i:
            parts.append((separator, None))
        parts.extend(sentence)
    return parts


def _note_parts(ctx: _Context, bank: _Bank) -> tuple[list[Part], str]:
    rng = ctx.rng
    identifier_templates = _choose_identifier_templates(ctx, bank)
    has_intro = any(t.intro for t in identifier_templates)
    sentences: dict[str, list[list[Part]]] = {r: [] for r in ("header", *_BODY_ROLES, "footer")}
    body = [*identifier_templates, *_choose_prose(ctx, bank, has_intro)]
    rng.shuffle(body)
    body.sort(key=lambda t: not t.intro)  # the patient's age opens the history
    for template in body:
        sentences[template.role].append(_render(ctx, template.text, bank.slot_fills))

    layout = "sections" if rng.random() < 0.55 else "plain"
    lines: list[list[Part]] = list(sentences["header"])
    if layout == "plain":
        paragraph = [s for role in _BODY_ROLES for s in sentences[role]]
        lines.append(_join(paragraph, " "))
    else:
        labels = _SECTION_LABELS[ctx.split]
        label_break = "\n" if rng.random() < 0.3 else " "
        for role in _BODY_ROLES:
            role_sentences = sentences[role]
            if not role_sentences:
                continue
            label = rng.choice(labels[role])
            if ctx.split == "test" and label == "PC:" and len(role_sentences) > 1:
                lines.append([("PC:" + label_break, None), *role_sentences[0]])
                lines.append([("BG:" + label_break, None), *_join(role_sentences[1:], " ")])
            else:
                lines.append([(label + label_break, None), *_join(role_sentences, " ")])
    lines.extend(sentences["footer"])
    parts = _join(lines, "\n")
    if rng.random() < _CAPS_FRACTION:
        layout += "-caps"
        parts = _in_capitals(parts)
    return parts, f"{layout}:" + "+".join(t.key for t in identifier_templates)


def _in_capitals(parts: Sequence[Part]) -> list[Part]:
    """An all-capitals note, part by part, keeping a part whose upper case changes its length."""
    return [(t.upper() if len(t.upper()) == len(t) else t, c) for t, c in parts]


def _choose_frame(ctx: _Context, bank: _Bank, has_intro: bool) -> list[_Template]:
    """The holdouts' non-identifier header fields, sign-off lines, addenda and copy lines."""
    rng = ctx.rng
    chosen: list[_Template] = []
    for role, most, chance in (
        ("header", 3, 0.7),
        ("footer", 2, 0.6),
        ("addendum", 1, 0.08),
        ("copy", 1, 0.15),
    ):
        if rng.random() >= chance:
            continue
        options = [t for t in bank.prose[role] if not (has_intro and t.intro)]
        for template in rng.sample(options, min(rng.randint(1, most), len(options))):
            if not (template.intro and has_intro):
                has_intro = has_intro or template.intro
                chosen.append(template)
    return chosen


_Lines = list[list[Part]]


def _labelled_body(
    ctx: _Context, sentences: dict[str, list[list[Part]]], style: Callable[[str], str]
) -> _Lines:
    """One line per body section: its label written by `style`, then its sentences."""
    lines: _Lines = []
    for role in _BODY_ROLES:
        if sentences[role]:
            label = style(ctx.rng.choice(_HOLDOUT_SECTION_LABELS[role]))
            lines.append([(label, None), *_join(sentences[role], " ")])
    return lines


def _closing(sentences: dict[str, list[list[Part]]]) -> _Lines:
    return [*sentences["footer"], *sentences["addendum"], *sentences["copy"]]


def _layout_academic(ctx: _Context, sentences: dict[str, list[list[Part]]]) -> _Lines:
    """A US academic centre's report: one header field a line, capital labels on lines of their
    own, a numbered impression, blank lines between sections."""
    lines: _Lines = [*sentences["header"]]
    for role in _BODY_ROLES:
        if not sentences[role]:
            continue
        label = ctx.rng.choice(_HOLDOUT_SECTION_LABELS[role]).upper() + ":"
        lines.extend([[("", None)], [(label, None)]])
        if role == "impression":
            lines.extend([(f"{i}. ", None), *s] for i, s in enumerate(sentences[role], 1))
        else:
            lines.append(_join(sentences[role], " "))
    closing = _closing(sentences)
    return [*lines, [("", None)], *closing] if closing else lines


def _layout_block(ctx: _Context, sentences: dict[str, list[list[Part]]]) -> _Lines:
    """A UK discharge-summary style: header fields two to a line, a rule, 'Label: text'."""
    header = sentences["header"]
    lines: _Lines = [_join(header[i : i + 2], "    ") for i in range(0, len(header), 2)]
    if header:
        lines.append([("-" * 40, None)])
    lines.extend(_labelled_body(ctx, sentences, lambda label: f"{label}: "))
    return [*lines, *_closing(sentences)]


def _layout_telegraphic(ctx: _Context, sentences: dict[str, list[list[Part]]]) -> _Lines:
    """A ward-round style note: header fields on one line, findings as bullets, '=>' opinion."""
    lines: _Lines = [_join(sentences["header"], " | ")] if sentences["header"] else []
    prefixes = {"history": "Hx: ", "technique": "", "comparison": "Prior: ", "impression": "=> "}
    for role in _BODY_ROLES:
        if role == "findings":
            lines.extend([("- ", None), *s] for s in sentences[role])
        elif sentences[role]:
            lines.append([(prefixes[role], None), *_join(sentences[role], " ")])
    return [*lines, *_closing(sentences)]


_DICTATION_BREAKS = (" ", " ", " ", " ... ", " [inaudible] ", " um, ", " -- ", " New paragraph. ")


def _layout_dictation(ctx: _Context, sentences: dict[str, list[list[Part]]]) -> _Lines:
    """A dictated note: the body as one paragraph, with the pauses and fillers of speech."""
    paragraph: list[Part] = []
    for i, sentence in enumerate(s for role in _BODY_ROLES for s in sentences[role]):
        if i:
            paragraph.append((ctx.rng.choice(_DICTATION_BREAKS), None))
        paragraph.extend(sentence)
    return [*sentences["header"], paragraph, *_closing(sentences)]


def _layout_inline(ctx: _Context, sentences: dict[str, list[list[Part]]]) -> _Lines:
    """Sections run together in one paragraph: 'Label - text. Label - text.'."""
    body = _labelled_body(ctx, sentences, lambda label: f"{label} - ")
    return [*sentences["header"], _join(body, " "), *_closing(sentences)]


_Layout = Callable[[_Context, dict[str, list[list[Part]]]], _Lines]
_HOLDOUT_LAYOUTS: dict[str, tuple[float, _Layout]] = {
    "academic": (0.22, _layout_academic),
    "block": (0.24, _layout_block),
    "telegraphic": (0.16, _layout_telegraphic),
    "dictation": (0.16, _layout_dictation),
    "inline": (0.22, _layout_inline),
}


def _framed_note_parts(
    ctx: _Context, bank: _Bank, layouts: Mapping[str, tuple[float, _Layout]]
) -> tuple[list[Part], str]:
    """A note with header fields, sign-off, addendum and copy lines, in one of `layouts` (each
    with its weight)."""
    rng = ctx.rng
    identifier_templates = _choose_identifier_templates(ctx, bank)
    prose = _choose_prose(ctx, bank, any(t.intro for t in identifier_templates))
    frame = _choose_frame(ctx, bank, any(t.intro for t in (*identifier_templates, *prose)))
    body = [*identifier_templates, *prose, *frame]
    rng.shuffle(body)
    body.sort(key=lambda t: not t.intro)  # the patient's age opens its section
    sentences: dict[str, list[list[Part]]] = {role: [] for role in _HOLDOUT_ROLES}
    for template in body:
        sentences[template.role].append(_render(ctx, template.text, bank.slot_fills))
    names = tuple(layouts)
    layout = rng.choices(names, [layouts[n][0] for n in names])[0]
    parts = _join(layouts[layout][1](ctx, sentences), "\n")
    if rng.random() < _CAPS_FRACTION:
        layout += "-caps"
        parts = _in_capitals(parts)
    return parts, f"{layout}:" + "+".join(t.key for t in identifier_templates)


def _to_note(parts: Sequence[Part], template: str) -> PhiNote:
    pieces: list[str] = []
    spans: list[PhiSpan] = []
    position = 0
    for text, category in parts:
        if category is not None:
            if text != text.strip() or not text:
                raise AssertionError(f"phi_corpus: identifier {text!r} has surrounding space")
            spans.append(PhiSpan(position, position + len(text), category))
        pieces.append(text)
        position += len(text)
    return PhiNote(text="".join(pieces), spans=tuple(spans), template=template)


def generate_phi_notes(n_notes: int, seed: int, split: str) -> list[PhiNote]:
    """`n_notes` labelled notes of one split; the same arguments always give the same notes."""
    _check_split(split)
    if n_notes < 0:
        raise ValueError(f"phi_corpus: n_notes={n_notes} is negative; pass a count >= 0")
    vocabulary = split_vocabulary(split)
    ctx = _Context(random.Random(f"medrep.phi_corpus:{split}:{seed}"), split, vocabulary)
    bank = _bank(split)
    note_parts = _note_maker(split)
    return [_to_note(*note_parts(ctx, bank)) for _ in range(n_notes)]


def _note_maker(split: str) -> Callable[[_Context, _Bank], tuple[list[Part], str]]:
    if split == "holdout":
        return partial(_framed_note_parts, layouts=_HOLDOUT_LAYOUTS)
    if split == "holdout2":
        from medrep.data.phi_holdout2 import LAYOUTS  # lazily: phi_holdout2 builds on this module

        return partial(_framed_note_parts, layouts=LAYOUTS)
    return _note_parts


def corpus_stats(notes: Sequence[PhiNote]) -> dict[str, int]:
    """Spans per category, every category listed (in PHI_CATEGORIES order)."""
    counts = dict.fromkeys(PHI_CATEGORIES, 0)
    for note in notes:
        for span in note.spans:
            counts[span.category] += 1
    return counts


def mark_spans(note: PhiNote) -> str:
    """The note's text with each span written as [[category:surface]]."""
    out: list[str] = []
    position = 0
    for span in note.spans:
        out.append(note.text[position : span.start])
        out.append(f"[[{span.category}:{note.text[span.start : span.end]}]]")
        position = span.end
    out.append(note.text[position:])
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the PHI corpus's counts and examples.")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--n", type=int, default=600, help="notes to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=3, help="notes to print with spans marked")
    args = parser.parse_args(argv)
    notes = generate_phi_notes(args.n, args.seed, args.split)
    stats = corpus_stats(notes)
    print(f"split={args.split} seed={args.seed} notes={len(notes)} spans={sum(stats.values())}")
    for category, count in stats.items():
        print(f"  {category:<12}{count:>6}")
    for note in notes[: args.examples]:
        print(f"\n--- {note.template}\n{mark_spans(note)}")


if __name__ == "__main__":
    main()
