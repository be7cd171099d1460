# multiref: one DAG from the DailyDialog archive to the tables of Zhao, Lala & Kawahara (2021)
# and the Mirror model of Li, Kiseleva & de Rijke (2021). See README.md and config/README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/reval.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/mirror.smk"
include: "workflow/rules/report.smk"


onstart:
    stamp_run()


rule all:
    default_target: True
    input:
        rules.table8.output,
        TABLE_OUTPUTS,
        MIRROR_OUTPUTS,
        REPORT_OUTPUTS,
        rules.hypotheses.output,
        SETTINGS,
        TEACHER_FIT,
        RUNS,
