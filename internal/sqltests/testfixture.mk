# Read after SQLite's own Makefile (make -f Makefile -f testfixture.mk): the
# testfixture rule of main.mk, with the same sources, flags and libraries,
# split into one object per source so that make -j compiles them side by
# side. main.mk's rule is one cc command over every source; the tree's
# sqlite3.c alone is most of that time, and now the test harness compiles
# beside it instead of after it.

TF.src := $(TESTFIXTURE_SRC)
TF.obj = $(addprefix tf/,$(notdir $(1:.c=.o)))
# sqlite3.c first: make -j starts the longest compile before the others.
TF.objs := $(call TF.obj,$(filter sqlite3.c,$(TF.src))) $(call TF.obj,$(filter-out sqlite3.c,$(TF.src)))
ifneq ($(words $(TF.objs)),$(words $(sort $(TF.objs))))
$(error testfixture.mk: two testfixture sources share a file name: $(TF.src))
endif

# $(T.link.tcl) with $(2) before the compiler: the harness is compiled
# under nice, so that sqlite3.c, the longest step of the whole gate, keeps a
# CPU of its own when the gate runs beside the library's compile.
define TF.rule
$(call TF.obj,$(1)): $(1) $(T.tcl.env.sh) has_tclsh85
	@mkdir -p tf
	$$(T.tcl.env.source); $(2) $$(T.link) -DSQLITE_NO_SYNC=1 $$(TESTFIXTURE_FLAGS) $$$$TCL_INCLUDE_SPEC -c -o $$@ $(1)
endef
$(foreach s,$(filter sqlite3.c,$(TF.src)),$(eval $(call TF.rule,$(s),)))
$(foreach s,$(filter-out sqlite3.c,$(TF.src)),$(eval $(call TF.rule,$(s),nice -n 19)))

testfixture-objects: $(TF.objs) $(T.tcl.env.sh)
	$(T.link.tcl) -o testfixture $(TF.objs) \
		$$TCL_LIB_SPEC $$TCL_LIBS $(LDFLAGS.libsqlite3)
