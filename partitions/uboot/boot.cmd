# Cairn boot-state rule for U-Boot (see docs/boot-state.md and docs/boards.md).
#
# The image build puts the board settings above this text:
#   cairn_cmdline   console and other kernel parameters
# bootstate.Boot in partitions/bootstate is the Go twin of this script: the
# two must take the same decision and leave the same environment bytes.
#
# The boot state is a redundant U-Boot environment of two 16 KiB copies in
# the last 64 KiB of the CAIRN_BOOT partition (copy 1 at end-64 KiB, copy 2
# at end-32 KiB), the bytes fw_setenv and partitions/ubootenv use: CRC32 of
# the data, a flag byte that grows by one with every write, then the data.
# It is read and written here, not through U-Boot's own saveenv, so that
# every board has the same power-safe environment wherever its U-Boot keeps
# its own.

setenv cairn_vars "cairn_a_priority cairn_a_tries cairn_a_ok cairn_b_priority cairn_b_tries cairn_b_ok"
if test -z "${devtype}"; then
	echo "cairn: devtype is not set; run this script through the distro boot"
	exit
fi

# Where the two copies are: 512-byte blocks, counted from the end of CAIRN_BOOT.
part number ${devtype} ${devnum} CAIRN_BOOT cairn_bootpart
part start ${devtype} ${devnum} ${cairn_bootpart} cairn_bstart
part size ${devtype} ${devnum} ${cairn_bootpart} cairn_bsize
setexpr cairn_env1 ${cairn_bstart} + ${cairn_bsize}
setexpr cairn_env1 ${cairn_env1} - 0x80
setexpr cairn_env2 ${cairn_env1} + 0x40

# Scratch memory below the kernel's load address, used before the kernel is
# loaded.
setexpr cairn_buf1 ${kernel_addr_r} + 0
setexpr cairn_buf2 ${kernel_addr_r} + 0x10000
setexpr cairn_out ${kernel_addr_r} + 0x20000
setexpr cairn_tmp ${kernel_addr_r} + 0x30000
setexpr cairn_imp1 ${cairn_buf1} + 1
setexpr cairn_imp2 ${cairn_buf2} + 1
setexpr cairn_flagp1 ${cairn_buf1} + 4
setexpr cairn_flagp2 ${cairn_buf2} + 4
setenv cairn_valid1 0
setenv cairn_valid2 0
setenv cairn_flag1 0
setenv cairn_flag2 0

# A copy is [CRC][flag][data]; env import -c wants [CRC][data], so the CRC is
# moved up over the flag after the flag is read. Importing is the CRC check:
# a torn copy fails it and changes nothing.
if ${devtype} read ${cairn_buf1} ${cairn_env1} 0x20; then
	setexpr.b cairn_flag1 *${cairn_flagp1}
	cp.b ${cairn_buf1} ${cairn_tmp} 4
	cp.b ${cairn_tmp} ${cairn_imp1} 4
	if env import -c ${cairn_imp1} 0x3fff ${cairn_vars}; then setenv cairn_valid1 1; fi
fi
if ${devtype} read ${cairn_buf2} ${cairn_env2} 0x20; then
	setexpr.b cairn_flag2 *${cairn_flagp2}
	cp.b ${cairn_buf2} ${cairn_tmp} 4
	cp.b ${cairn_tmp} ${cairn_imp2} 4
	if env import -c ${cairn_imp2} 0x3fff ${cairn_vars}; then setenv cairn_valid2 1; fi
fi

# The current copy: the only valid one, or of two the newer flag (it wraps
# from ff to 0; on equal flags copy 1).
setenv cairn_cur 0
if test "${cairn_valid1}" = 1; then setenv cairn_cur 1; fi
if test "${cairn_valid2}" = 1; then
	if test "${cairn_cur}" = 0; then
		setenv cairn_cur 2
	else
		setenv cairn_newer 0
		if itest ${cairn_flag2} -gt ${cairn_flag1}; then setenv cairn_newer 1; fi
		if itest ${cairn_flag2} -eq 0xff; then if itest ${cairn_flag1} -eq 0; then setenv cairn_newer 0; fi; fi
		if itest ${cairn_flag2} -eq 0; then if itest ${cairn_flag1} -eq 0xff; then setenv cairn_newer 1; fi; fi
		if test "${cairn_newer}" = 1; then setenv cairn_cur 2; fi
	fi
fi
for v in ${cairn_vars}; do setenv ${v}; done
if test "${cairn_cur}" = 1; then env import -c ${cairn_imp1} 0x3fff ${cairn_vars}; fi
if test "${cairn_cur}" = 2; then env import -c ${cairn_imp2} 0x3fff ${cairn_vars}; fi

# A missing variable, or one that is not a single digit, reads as 0; ok is
# only ever "1".
setenv a_prio 0
setenv a_tries 0
setenv b_prio 0
setenv b_tries 0
for d in 1 2 3 4 5 6 7 8 9; do
	if test "${cairn_a_priority}" = "${d}"; then setenv a_prio ${d}; fi
	if test "${cairn_a_tries}" = "${d}"; then setenv a_tries ${d}; fi
	if test "${cairn_b_priority}" = "${d}"; then setenv b_prio ${d}; fi
	if test "${cairn_b_tries}" = "${d}"; then setenv b_tries ${d}; fi
done
setenv a_ok 0
setenv b_ok 0
if test "${cairn_a_ok}" = 1; then setenv a_ok 1; fi
if test "${cairn_b_ok}" = 1; then setenv b_ok 1; fi

# 1. Candidates: priority > 0, and ok or tries left.
setenv a_boot 0
setenv b_boot 0
if test "${a_prio}" != 0; then
	if test "${a_ok}" = 1; then setenv a_boot 1; fi
	if test "${a_tries}" != 0; then setenv a_boot 1; fi
fi
if test "${b_prio}" != 0; then
	if test "${b_ok}" = 1; then setenv b_boot 1; fi
	if test "${b_tries}" != 0; then setenv b_boot 1; fi
fi

# 2. The highest priority wins; on a tie, A before B.
setenv cairn_slot
if test "${a_boot}" = 1; then setenv cairn_slot A; fi
if test "${b_boot}" = 1; then
	if test -z "${cairn_slot}"; then
		setenv cairn_slot B
	elif test ${b_prio} -gt ${a_prio}; then
		setenv cairn_slot B
	fi
fi

# No candidate means the environment is missing or damaged (the agent never
# leaves the device without a committed slot): boot A and write nothing.
if test -z "${cairn_slot}"; then
	echo "cairn: no bootable slot in the environment; booting A"
	setenv cairn_slot A
	setenv a_ok 1
fi

# 3. A slot that is not ok spends one try, written before it boots. The tries
# of an ok slot are never touched.
setenv cairn_write 0
if test "${cairn_slot}" = A; then
	if test "${a_ok}" != 1; then
		setenv cairn_write 1
		if test "${a_tries}" = 9; then setenv cairn_a_tries 8
		elif test "${a_tries}" = 8; then setenv cairn_a_tries 7
		elif test "${a_tries}" = 7; then setenv cairn_a_tries 6
		elif test "${a_tries}" = 6; then setenv cairn_a_tries 5
		elif test "${a_tries}" = 5; then setenv cairn_a_tries 4
		elif test "${a_tries}" = 4; then setenv cairn_a_tries 3
		elif test "${a_tries}" = 3; then setenv cairn_a_tries 2
		elif test "${a_tries}" = 2; then setenv cairn_a_tries 1
		else setenv cairn_a_tries 0
		fi
	fi
else
	if test "${b_ok}" != 1; then
		setenv cairn_write 1
		if test "${b_tries}" = 9; then setenv cairn_b_tries 8
		elif test "${b_tries}" = 8; then setenv cairn_b_tries 7
		elif test "${b_tries}" = 7; then setenv cairn_b_tries 6
		elif test "${b_tries}" = 6; then setenv cairn_b_tries 5
		elif test "${b_tries}" = 5; then setenv cairn_b_tries 4
		elif test "${b_tries}" = 4; then setenv cairn_b_tries 3
		elif test "${b_tries}" = 3; then setenv cairn_b_tries 2
		elif test "${b_tries}" = 2; then setenv cairn_b_tries 1
		else setenv cairn_b_tries 0
		fi
	fi
fi

# The write goes to the copy that is not current, with the flag advanced, so
# a write cut short leaves the current copy as it was.
if test "${cairn_write}" = 1; then
	if test "${cairn_cur}" = 2; then
		setenv cairn_target ${cairn_env1}
		setexpr cairn_newflag ${cairn_flag2} + 1
	else
		setenv cairn_target ${cairn_env2}
		setexpr cairn_newflag ${cairn_flag1} + 1
	fi
	if itest ${cairn_newflag} -eq 0x100; then setenv cairn_newflag 0; fi
	setexpr cairn_exp ${cairn_out} + 1
	setexpr cairn_flagp ${cairn_out} + 4
	env export -c -s 0x3fff ${cairn_exp} ${cairn_vars}
	cp.b ${cairn_exp} ${cairn_tmp} 4
	cp.b ${cairn_tmp} ${cairn_out} 4
	mw.b ${cairn_flagp} ${cairn_newflag}
	if ${devtype} write ${cairn_out} ${cairn_target} 0x20; then
		echo "cairn: slot ${cairn_slot} on trial, tries counted down"
	else
		echo "cairn: cannot count down the tries of slot ${cairn_slot}; not booting it"
		sleep 5
		reset
	fi
fi

# The kernel and initramfs ride inside the slot's ext4 filesystem.
part number ${devtype} ${devnum} CAIRN_ROOT_${cairn_slot} cairn_part
echo "cairn: booting slot ${cairn_slot} from ${devtype} ${devnum}:${cairn_part}"
setenv bootargs "cairn.slot=${cairn_slot} ${cairn_cmdline}"
setenv cairn_fdt ${fdt_addr}
if test -z "${cairn_fdt}"; then setenv cairn_fdt ${fdtcontroladdr}; fi
# booti unpacks a compressed Image through this window.
if test -z "${kernel_comp_addr_r}"; then
	setexpr kernel_comp_addr_r ${ramdisk_addr_r} + 0x4000000
	setenv kernel_comp_size 0x4000000
fi
if ext4load ${devtype} ${devnum}:${cairn_part} ${ramdisk_addr_r} /boot/initrd; then
	setenv cairn_initrd_size ${filesize}
	if ext4load ${devtype} ${devnum}:${cairn_part} ${kernel_addr_r} /boot/vmlinuz; then
		booti ${kernel_addr_r} ${ramdisk_addr_r}:${cairn_initrd_size} ${cairn_fdt}
	fi
fi

# Loading failed. A slot on trial has already spent its try, so resetting
# lets the counter move the device to the fallback.
echo "cairn: cannot boot slot ${cairn_slot}"
sleep 5
reset
