// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: /sys/fs/twinfs/<dev>/, one directory per mounted file system,
 * one value per file.
 */
#include <linux/sysfs.h>
#include "cm.h"
#include "mirror.h"

static struct kset *twinfs_kset;

struct twinfs_attr {
	struct attribute attr;
	ssize_t (*show)(struct twinfs_sb_info *sbi, char *buf);
};

#define TWINFS_ATTR_RO(name)						\
static ssize_t name##_show(struct twinfs_sb_info *sbi, char *buf);	\
static struct twinfs_attr twinfs_attr_##name = __ATTR_RO(name)

static ssize_t format_version_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%u\n", TWINFS_FORMAT_VERSION);
}

static ssize_t blocks_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%llu\n", sbi->geo.blocks);
}

static ssize_t free_blocks_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  percpu_counter_sum_positive(&sbi->free_blocks));
}

static ssize_t inodes_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%llu\n",
			  (u64)sbi->geo.ag_count * sbi->geo.inodes_per_ag);
}

static ssize_t free_inodes_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  percpu_counter_sum_positive(&sbi->free_inodes));
}

static ssize_t ag_count_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%u\n", sbi->geo.ag_count);
}

static ssize_t block_size_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%u\n", TWINFS_BLOCK_SIZE);
}

static ssize_t uuid_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%pUb\n", &sbi->sb->s_uuid);
}

static ssize_t mount_options_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%s,errors=%s%s\n",
			  sb_rdonly(sbi->sb) ? "ro" : "rw",
			  sbi->opts.errors == TWINFS_ERRORS_RO ?
			  "remount-ro" : "continue",
			  sbi->opts.fault_inject ? ",fault_inject" : "");
}

static ssize_t state_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%s\n", sb_rdonly(sbi->sb) ? "read-only" :
			  "mounted");
}

static ssize_t ops_rolled_back_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&sbi->ops_rolled_back));
}

static ssize_t pages_restored_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&sbi->pages_restored));
}

static ssize_t cm_device_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%s\n", twinfs_cm_device(sbi->sb));
}

static ssize_t cm_size_show(struct twinfs_sb_info *sbi, char *buf)
{
	u64 size, used;

	twinfs_cm_stats(sbi->sb, &size, &used);
	return sysfs_emit(buf, "%llu\n", size);
}

static ssize_t cm_used_show(struct twinfs_sb_info *sbi, char *buf)
{
	u64 size, used;

	twinfs_cm_stats(sbi->sb, &size, &used);
	return sysfs_emit(buf, "%llu\n", used);
}

static ssize_t last_seq_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%llu\n", twinfs_cm_last_seq(sbi->sb));
}

static ssize_t cp_seq_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%llu\n", twinfs_cp_seq(sbi->sb));
}

static ssize_t cp_count_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%llu\n", twinfs_cp_count(sbi->sb));
}

static ssize_t cp_dirty_blocks_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%u\n", twinfs_cp_dirty(sbi->sb));
}

static ssize_t records_replayed_show(struct twinfs_sb_info *sbi, char *buf)
{
	return sysfs_emit(buf, "%llu\n", sbi->records_replayed);
}

static ssize_t group_commit_show(struct twinfs_sb_info *sbi, char *buf)
{
	return twinfs_cm_group_commit_show(sbi->sb, buf);
}

static ssize_t mirror_show(struct twinfs_sb_info *sbi, char *buf)
{
	return twinfs_mirror_show(sbi->sb, buf);
}

TWINFS_ATTR_RO(mirror);
TWINFS_ATTR_RO(group_commit);
TWINFS_ATTR_RO(cm_device);
TWINFS_ATTR_RO(cm_size);
TWINFS_ATTR_RO(cm_used);
TWINFS_ATTR_RO(last_seq);
TWINFS_ATTR_RO(cp_seq);
TWINFS_ATTR_RO(cp_count);
TWINFS_ATTR_RO(cp_dirty_blocks);
TWINFS_ATTR_RO(records_replayed);
TWINFS_ATTR_RO(format_version);
TWINFS_ATTR_RO(ops_rolled_back);
TWINFS_ATTR_RO(pages_restored);
TWINFS_ATTR_RO(blocks);
TWINFS_ATTR_RO(free_blocks);
TWINFS_ATTR_RO(inodes);
TWINFS_ATTR_RO(free_inodes);
TWINFS_ATTR_RO(ag_count);
TWINFS_ATTR_RO(block_size);
TWINFS_ATTR_RO(uuid);
TWINFS_ATTR_RO(mount_options);
TWINFS_ATTR_RO(state);

static struct attribute *twinfs_attrs[] = {
	&twinfs_attr_format_version.attr,
	&twinfs_attr_blocks.attr,
	&twinfs_attr_free_blocks.attr,
	&twinfs_attr_inodes.attr,
	&twinfs_attr_free_inodes.attr,
	&twinfs_attr_ag_count.attr,
	&twinfs_attr_block_size.attr,
	&twinfs_attr_uuid.attr,
	&twinfs_attr_mount_options.attr,
	&twinfs_attr_state.attr,
	&twinfs_attr_ops_rolled_back.attr,
	&twinfs_attr_pages_restored.attr,
	&twinfs_attr_cm_device.attr,
	&twinfs_attr_cm_size.attr,
	&twinfs_attr_cm_used.attr,
	&twinfs_attr_last_seq.attr,
	&twinfs_attr_group_commit.attr,
	&twinfs_attr_cp_seq.attr,
	&twinfs_attr_cp_count.attr,
	&twinfs_attr_cp_dirty_blocks.attr,
	&twinfs_attr_records_replayed.attr,
	&twinfs_attr_mirror.attr,
	NULL,
};
ATTRIBUTE_GROUPS(twinfs);

static ssize_t twinfs_attr_show(struct kobject *kobj, struct attribute *attr,
				char *buf)
{
	struct twinfs_sb_info *sbi = container_of(kobj, struct twinfs_sb_info,
						  kobj);
	struct twinfs_attr *a = container_of(attr, struct twinfs_attr, attr);

	return a->show(sbi, buf);
}

static const struct sysfs_ops twinfs_sysfs_ops = {
	.show = twinfs_attr_show,
};

static void twinfs_kobj_release(struct kobject *kobj)
{
	struct twinfs_sb_info *sbi = container_of(kobj, struct twinfs_sb_info,
						  kobj);

	complete(&sbi->kobj_unregister);
}

static struct kobj_type twinfs_ktype = {
	.default_groups	= twinfs_groups,
	.sysfs_ops	= &twinfs_sysfs_ops,
	.release	= twinfs_kobj_release,
};

int twinfs_sysfs_register(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	int err;

	init_completion(&sbi->kobj_unregister);
	sbi->kobj.kset = twinfs_kset;
	err = kobject_init_and_add(&sbi->kobj, &twinfs_ktype, NULL, "%s",
				   sb->s_id);
	if (err) {
		kobject_put(&sbi->kobj);
		wait_for_completion(&sbi->kobj_unregister);
		twinfs_err(sb, "cannot create /sys/fs/twinfs/%s: %d",
			   sb->s_id, err);
	}
	return err;
}

void twinfs_sysfs_unregister(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);

	kobject_del(&sbi->kobj);
	kobject_put(&sbi->kobj);
	wait_for_completion(&sbi->kobj_unregister);
}

/* /sys/fs/twinfs/mirror_target: the partner's end of mirroring. */
static ssize_t mirror_target_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return twinfs_target_show(buf);
}

static ssize_t mirror_target_store(struct kobject *kobj,
				   struct kobj_attribute *attr,
				   const char *buf, size_t len)
{
	int err = twinfs_target_command(buf);

	return err ? err : len;
}

static struct kobj_attribute twinfs_mirror_target_attr =
	__ATTR(mirror_target, 0600, mirror_target_show, mirror_target_store);

int twinfs_sysfs_init(void)
{
	int err;

	twinfs_kset = kset_create_and_add("twinfs", NULL, fs_kobj);
	if (!twinfs_kset)
		return -ENOMEM;
	err = sysfs_create_file(&twinfs_kset->kobj,
				&twinfs_mirror_target_attr.attr);
	if (err)
		kset_unregister(twinfs_kset);
	return err;
}

void twinfs_sysfs_exit(void)
{
	twinfs_target_exit();
	sysfs_remove_file(&twinfs_kset->kobj, &twinfs_mirror_target_attr.attr);
	kset_unregister(twinfs_kset);
}
