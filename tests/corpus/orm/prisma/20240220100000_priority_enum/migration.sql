-- CreateEnum
CREATE TYPE "Priority" AS ENUM ('LOW', 'NORMAL', 'HIGH');

-- AlterTable
ALTER TABLE "workflow_instances" ADD COLUMN     "priority" "Priority" NOT NULL DEFAULT 'NORMAL';
